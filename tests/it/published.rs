//! The published example answers of every datacube family, decoded into the rows their
//! documentation describes. Expected values are the examples' own numbers, written out here
//! by hand from `datacube-families.md` (the official pages, or the copies the spec names where
//! the official body could not be consulted): never from wxcube's code.

use arrow::array::{Array, RecordBatch};
use arrow::util::display::array_value_to_string;
use wxcube_connector::dates::{DateRange, parse_date};
use wxcube_connector::normalize::{Counters, decode, to_batch};
use wxcube_registry as registry;

/// The answer `body` of `endpoint` for `begin..=end`, decoded, as one batch.
fn decoded(endpoint: &str, body: &str, begin: &str, end: &str) -> (RecordBatch, Counters) {
    let table = registry::find(endpoint).unwrap();
    let window = DateRange::new(parse_date(begin).unwrap(), parse_date(end).unwrap()).unwrap();
    let mut counters = Counters::default();
    let rows = decode(table, body.as_bytes(), window, &mut counters).unwrap_or_else(|e| panic!("{endpoint}: {e}"));
    let pairs: Vec<(&str, &_)> = rows.iter().map(|r| ("wxexample", r)).collect();
    (to_batch(table, &pairs, 0), counters)
}

/// Row `row` of `batch` as `column=value` pairs (nulls as `null`), appid and extracted_at left
/// out.
fn row(batch: &RecordBatch, row: usize) -> Vec<String> {
    let schema = batch.schema();
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != "appid" && f.name() != "extracted_at")
        .map(|(i, f)| {
            let column = batch.column(i);
            let value =
                if column.is_null(row) { "null".to_string() } else { array_value_to_string(column, row).unwrap() };
            format!("{}={value}", f.name())
        })
        .collect()
}

#[test]
fn getusersummary_new_doc() {
    let body = r#"{
"list": [
{
"ref_date": "2014-12-07",
"user_source": 0,
"new_user": 0,
"cancel_user": 0
}
]
}"#;
    let (batch, _) = decoded("getusersummary", body, "2014-12-02", "2014-12-07");
    assert_eq!(row(&batch, 0), ["user_source=0", "user_source_label=other", "new_user=0", "cancel_user=0"]);
}

#[test]
fn getusercumulate_new_doc_and_a_real_answer() {
    let body = r#"{
"list": [
{
"ref_date": "2014-12-07",
"cumulate_user": 1217056
}
]
}"#;
    let (batch, _) = decoded("getusercumulate", body, "2014-12-07", "2014-12-07");
    // The doc's example leaves out the undocumented user_source: null, not 0.
    assert_eq!(row(&batch, 0), ["cumulate_user=1217056", "user_source=null"]);
    let real = r#"{"list":[{"ref_date":"2023-04-20","user_source":0,"cumulate_user":11}]}"#;
    let (batch, _) = decoded("getusercumulate", real, "2023-04-20", "2023-04-20");
    assert_eq!(row(&batch, 0), ["cumulate_user=11", "user_source=0"]);
}

#[test]
fn old_doc_examples_with_comments_are_not_json() {
    // The old doc's examples carry `//` comment lines: a server sending them would be refused.
    let body = "{ \n    \"list\": [ \n        { \n            \"ref_date\": \"2014-12-07\", \n            \"user_source\": 0, \n            \"new_user\": 0, \n            \"cancel_user\": 0\n        }\n\t//后续还有ref_date在begin_date和end_date之间的数据\n    ]\n}";
    let table = registry::find("getusersummary").unwrap();
    let window = DateRange::new(parse_date("2014-12-02").unwrap(), parse_date("2014-12-07").unwrap()).unwrap();
    let err = decode(table, body.as_bytes(), window, &mut Counters::default()).unwrap_err().to_string();
    assert!(err.starts_with("body is not JSON"), "{err}");
}

#[test]
fn getarticletotal_example_flattens_its_details() {
    let body = r#"{
    "list": [
        {
            "ref_date": "2014-12-14",
            "msgid": "202457380_1",
            "title": "马航丢画记",
            "details": [
                {
                    "stat_date": "2014-12-14",
                    "target_user": 261917,
                    "int_page_read_user": 23676,
                    "int_page_read_count": 25615,
                    "ori_page_read_user": 29,
                    "ori_page_read_count": 34,
                    "share_user": 122,
                    "share_count": 994,
                    "add_to_fav_user": 1,
                    "add_to_fav_count": 3,
                    "int_page_from_session_read_user": 657283,
                    "int_page_from_session_read_count": 753486,
                    "int_page_from_hist_msg_read_user": 1669,
                    "int_page_from_hist_msg_read_count": 1920,
                    "int_page_from_feed_read_user": 367308,
                    "int_page_from_feed_read_count": 433422,
                    "int_page_from_friends_read_user": 15428,
                    "int_page_from_friends_read_count": 19645,
                    "int_page_from_other_read_user": 477,
                    "int_page_from_other_read_count": 703,
                    "feed_share_from_session_user": 63925,
                    "feed_share_from_session_cnt": 66489,
                    "feed_share_from_feed_user": 18249,
                    "feed_share_from_feed_cnt": 19319,
                    "feed_share_from_other_user": 731,
                    "feed_share_from_other_cnt": 775
                }
            ]
        }
    ]
}"#;
    let (batch, _) = decoded("getarticletotal", body, "2014-12-14", "2014-12-14");
    assert_eq!(batch.num_rows(), 1);
    let r = row(&batch, 0);
    for want in [
        "msgid=202457380_1",
        "title=马航丢画记",
        "user_source=null",
        "url=null",
        "stat_date=2014-12-14",
        "target_user=261917",
        "int_page_read_user=23676",
        "add_to_fav_count=3",
        "int_page_from_session_read_user=657283",
        "feed_share_from_session_cnt=66489",
        "feed_share_from_other_cnt=775",
        // Not in this example: null, never 0.
        "int_page_from_kanyikan_read_user=null",
        "int_page_from_souyisou_read_count=null",
    ] {
        assert!(r.contains(&want.to_string()), "{want} not in {r:?}");
    }
}

#[test]
fn getuserread_example_keeps_per_source_rows() {
    let body = r#"{
    "list": [
        {
            "ref_date": "2020-02-18",
            "user_source": 99999999,
            "int_page_read_user": 545497,
            "int_page_read_count": 856093,
            "ori_page_read_user": 191,
            "ori_page_read_count": 240,
            "share_user": 22603,
            "share_count": 28487,
            "add_to_fav_user": 3163,
            "add_to_fav_count": 3841
        },
        {
            "ref_date": "2020-02-18",
            "user_source": 0,
            "int_page_read_user": 381272,
            "int_page_read_count": 646629,
            "ori_page_read_user": 0,
            "ori_page_read_count": 0,
            "share_user": 13110,
            "share_count": 16469,
            "add_to_fav_user": 0,
            "add_to_fav_count": 0
        }
    ]
}"#;
    let (batch, _) = decoded("getuserread", body, "2020-02-18", "2020-02-18");
    assert_eq!(
        row(&batch, 0),
        [
            "user_source=99999999",
            "user_source_label=all",
            "int_page_read_user=545497",
            "int_page_read_count=856093",
            "ori_page_read_user=191",
            "ori_page_read_count=240",
            "share_user=22603",
            "share_count=28487",
            "add_to_fav_user=3163",
            "add_to_fav_count=3841"
        ]
    );
    assert_eq!(row(&batch, 1)[..3], ["user_source=0", "user_source_label=session", "int_page_read_user=381272"]);
    // Rows from 2020-03 leave the original-page and favourite fields out on per-source rows.
    let later = r#"{"list":[{"ref_date":"2020-03-02","user_source":2,"int_page_read_user":5,"int_page_read_count":6,"share_user":1,"share_count":1}]}"#;
    let (batch, _) = decoded("getuserread", later, "2020-03-02", "2020-03-02");
    assert_eq!(
        row(&batch, 0),
        [
            "user_source=2",
            "user_source_label=feed",
            "int_page_read_user=5",
            "int_page_read_count=6",
            "ori_page_read_user=null",
            "ori_page_read_count=null",
            "share_user=1",
            "share_count=1",
            "add_to_fav_user=null",
            "add_to_fav_count=null"
        ]
    );
}

#[test]
fn getuserreadhour_example_has_hour_and_ref_hour() {
    let body = r#"{"list":[{"ref_date":"2020-02-18","ref_hour":0,"user_source":99999999,"int_page_read_user":9028,"int_page_read_count":11815,"ori_page_read_user":0,"ori_page_read_count":0,"share_user":279,"share_count":340,"add_to_fav_user":0,"add_to_fav_count":0}]}"#;
    let (batch, _) = decoded("getuserreadhour", body, "2020-02-18", "2020-02-18");
    assert_eq!(
        row(&batch, 0)[..5],
        ["hour=0", "ref_hour=0", "user_source=99999999", "user_source_label=all", "int_page_read_user=9028"]
    );
    // The 2015 example has no user_source, the row's key since 2020 (and in real answers as
    // early as 2015): a row without it fails the window, naming the field, rather than being
    // written under a made-up source.
    let old = r#"{"list":[{"ref_date":"2014-12-07","ref_hour":1200,"int_page_read_user":0,"int_page_read_count":0,"ori_page_read_user":4,"ori_page_read_count":25517,"share_user":4,"share_count":96,"add_to_fav_user":1,"add_to_fav_count":3}]}"#;
    let table = registry::find("getuserreadhour").unwrap();
    let window = DateRange::new(parse_date("2014-12-07").unwrap(), parse_date("2014-12-07").unwrap()).unwrap();
    let err = decode(table, old.as_bytes(), window, &mut Counters::default()).unwrap_err().to_string();
    assert_eq!(err, "row 1: user_source is missing");
}

#[test]
fn getusershare_example_has_an_undocumented_scene() {
    let body = r#"{"list":[{"ref_date":"2014-12-07","share_scene":1,"share_count":207,"share_user":11},{"ref_date":"2014-12-07","share_scene":5,"share_count":23,"share_user":11}]}"#;
    let (batch, counters) = decoded("getusershare", body, "2014-12-07", "2014-12-07");
    assert_eq!(row(&batch, 0), ["share_scene=1", "share_scene_label=friends", "share_count=207", "share_user=11"]);
    // Scene 5 is never defined: its row stays, unlabelled, and is counted.
    assert_eq!(row(&batch, 1), ["share_scene=5", "share_scene_label=null", "share_count=23", "share_user=11"]);
    assert_eq!(counters.unknown_codes, 1);
}

#[test]
fn getusersharehour_new_doc() {
    let body = r#"{
"list": [
{
"ref_date": "2014-12-07",
"ref_hour": 1200,
"share_scene": 1,
"share_count": 72,
"share_user": 4
}
]
}"#;
    let (batch, _) = decoded("getusersharehour", body, "2014-12-07", "2014-12-07");
    assert_eq!(
        row(&batch, 0),
        ["hour=12", "ref_hour=1200", "share_scene=1", "share_scene_label=friends", "share_count=72", "share_user=4"]
    );
}

#[test]
fn getarticlesummary_old_example() {
    let body = r#"{"list":[{"ref_date":"2014-12-08","msgid":"10000050_1","title":"12月27日 DiLi日报","int_page_read_user":23676,"int_page_read_count":25615,"ori_page_read_user":29,"ori_page_read_count":34,"share_user":122,"share_count":994,"add_to_fav_user":1,"add_to_fav_count":3}]}"#;
    let (batch, _) = decoded("getarticlesummary", body, "2014-12-08", "2014-12-08");
    assert_eq!(
        row(&batch, 0),
        [
            "msgid=10000050_1",
            "title=12月27日 DiLi日报",
            "int_page_read_user=23676",
            "int_page_read_count=25615",
            "ori_page_read_user=29",
            "ori_page_read_count=34",
            "share_user=122",
            "share_count=994",
            "add_to_fav_user=1",
            "add_to_fav_count=3"
        ]
    );
}

#[test]
fn getarticleread_and_getarticleshare_fixtures() {
    let body = r#"{"list":[{"ref_date":"2025-11-01","msgid":"10000050_1","detail":{"read_user":4123,"read_user_source":[{"user_count":4123,"scene_desc":"全部"},{"user_count":234,"scene_desc":"公众号消息"}]}}],"is_delay":false}"#;
    let (batch, _) = decoded("getarticleread", body, "2025-11-01", "2025-11-01");
    assert_eq!(
        row(&batch, 0),
        [
            "msgid=10000050_1",
            "read_user=4123",
            "read_user_source=[{user_count: 4123, scene_desc: 全部}, {user_count: 234, scene_desc: 公众号消息}]",
            "is_delay=false"
        ]
    );
    let body =
        r#"{"list":[{"ref_date":"2025-11-01","msgid":"2247490098_1","detail":{"share_user":366}}],"is_delay":true}"#;
    let (batch, counters) = decoded("getarticleshare", body, "2025-11-01", "2025-11-01");
    assert_eq!(row(&batch, 0), ["msgid=2247490098_1", "share_user=366", "is_delay=true"]);
    assert!(counters.delayed);
}

#[test]
fn getbizsummary_fixture() {
    let body = r#"{"list":[{"ref_date":"2025-11-01","detail":{"read_user":4123,"read_user_source":[{"user_count":4123,"scene_desc":"全部"}],"share_user":366,"zaikan_user":191,"like_user":386,"comment_count":33,"collection_user":233,"redirect_ori_page_user":369,"send_page_count":512}}],"is_delay":false}"#;
    let (batch, _) = decoded("getbizsummary", body, "2025-11-01", "2025-11-30");
    assert_eq!(
        row(&batch, 0),
        [
            "read_user=4123",
            "read_user_source=[{user_count: 4123, scene_desc: 全部}]",
            "share_user=366",
            "zaikan_user=191",
            "like_user=386",
            "comment_count=33",
            "collection_user=233",
            "redirect_ori_page_user=369",
            "send_page_count=512",
            "is_delay=false"
        ]
    );
}

#[test]
fn getarticletotaldetail_real_answer() {
    // The official community's real answer (2026-03-11), verbatim up to its first detail_list
    // element, closed after it.
    let body = r#"{"list":[{"ref_date":"2026-03-09","msgid":"2247483720_1","publish_type":0,"detail_list":[{"stat_date":"2026-03-09","read_user":3,"read_user_source":[{"user_count":2,"scene_desc":"公众号消息"},{"user_count":2,"scene_desc":"公众号主页"},{"user_count":3,"scene_desc":"全部"},{"user_count":0,"scene_desc":"聊天会话"},{"user_count":0,"scene_desc":"朋友圈"},{"user_count":0,"scene_desc":"其他"},{"user_count":0,"scene_desc":"推荐"},{"user_count":0,"scene_desc":"搜一搜"}],"share_user":0,"read_subscribe_user":0,"read_delivery_rate":0.0689655169845,"read_finish_rate":0.666666686535,"read_avg_activetime":0.10000000149,"zaikan_user":0,"like_user":0,"praise_money":0,"comment_count":0,"collection_user":0,"read_jump_position":[{"position":1,"rate":0},{"position":2,"rate":0},{"position":3,"rate":0},{"position":4,"rate":0},{"position":5,"rate":1}]}]}]}"#;
    let (batch, counters) = decoded("getarticletotaldetail", body, "2026-03-09", "2026-03-09");
    assert_eq!(
        row(&batch, 0),
        [
            "msgid=2247483720_1",
            "publish_type=0",
            "title=null",
            "content_url=null",
            "stat_date=2026-03-09",
            "read_user=3",
            "read_user_source=[{user_count: 2, scene_desc: 公众号消息}, {user_count: 2, scene_desc: 公众号主页}, {user_count: 3, scene_desc: 全部}, {user_count: 0, scene_desc: 聊天会话}, {user_count: 0, scene_desc: 朋友圈}, {user_count: 0, scene_desc: 其他}, {user_count: 0, scene_desc: 推荐}, {user_count: 0, scene_desc: 搜一搜}]",
            "share_user=0",
            "zaikan_user=0",
            "like_user=0",
            "comment_count=0",
            "collection_user=0",
            "praise_money=0",
            "read_subscribe_user=0",
            "read_delivery_rate=0.0689655169845",
            "read_finish_rate=0.666666686535",
            "read_avg_activetime=0.10000000149",
            "read_jump_position=[{position: 1, rate: 0.0}, {position: 2, rate: 0.0}, {position: 3, rate: 0.0}, {position: 4, rate: 0.0}, {position: 5, rate: 1.0}]",
            "is_delay=false"
        ]
    );
    assert_eq!(counters.unknown_fields, []);
}

#[test]
fn getinterfacesummary_and_hour_new_doc() {
    let body = r#"{"list":[{"ref_date":"2014-12-07","callback_count":36974,"fail_count":67,"total_time_cost":14994291,"max_time_cost":5044}]}"#;
    let (batch, _) = decoded("getinterfacesummary", body, "2014-12-07", "2014-12-07");
    assert_eq!(
        row(&batch, 0),
        ["callback_count=36974", "fail_count=67", "total_time_cost=14994291", "max_time_cost=5044"]
    );
    let body = r#"{"list":[{"ref_date":"2014-12-01","ref_hour":0,"callback_count":331,"fail_count":18,"total_time_cost":167870,"max_time_cost":5042}]}"#;
    let (batch, _) = decoded("getinterfacesummaryhour", body, "2014-12-01", "2014-12-01");
    assert_eq!(
        row(&batch, 0),
        ["hour=0", "ref_hour=0", "callback_count=331", "fail_count=18", "total_time_cost=167870", "max_time_cost=5042"]
    );
}

#[test]
fn msgids_above_two_to_the_31_stay_text() {
    let body = r#"{"list":[{"ref_date":"2022-08-19","msgid":"2247485082_1","title":"群发","user_source":0,"details":[{"stat_date":"2022-08-19","target_user":1,"int_page_read_user":0}]}]}"#;
    let (batch, _) = decoded("getarticletotal", body, "2022-08-19", "2022-08-19");
    let r = row(&batch, 0);
    assert!(r.contains(&"msgid=2247485082_1".to_string()) && r.contains(&"user_source=0".to_string()), "{r:?}");
    assert!(r.contains(&"share_user=null".to_string()), "a left-out count is null: {r:?}");
}
