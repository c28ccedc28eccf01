//! The simulator's data for the user, article and interface families.
//!
//! Like `data` for the message tables: a pure function of (table, appid, date), the same in
//! every process, so that tests can call it to know what a run should have written.
//!
//! One model of an account makes every table, so the tables agree with each other the way the
//! real ones do (`datacube-families.md` tells what the real ones look like):
//! - followers: `cumulate_user` is a closed-form curve of the date — a logistic growth, for
//!   some accounts a slow decline, a seasonal wiggle, a few jumps when something went viral and
//!   a daily wobble — so any day costs the same. A day's gains and losses (`getusersummary`)
//!   add up exactly to the change of that curve, split over the follow channels that existed
//!   then (51 folds into 0 from June 2023; 35/39/43 only in the 2015 era; 176 now and then);
//! - articles: the account mass-sends on some days (its posts per week, fewer at weekends), one
//!   to four articles at its usual hour, mostly notified (`publish_type` 0). An article reaches
//!   about the followers of its day and is read along a decaying curve for 30 days, from sources
//!   that drift from the account's message list to its home page and search. Its daily figures
//!   make the per-article tables (`getarticlesummary` with its "sum ≥ 3" threshold, the 2025
//!   family's `getarticleread` and `getarticleshare`); their running totals make
//!   `getarticletotal` (7 days, mass-sent articles only) and `getarticletotaldetail` (30 days).
//!   Summed over the articles of the last 30 days, plus a long tail of older ones, they make the
//!   account-level reads and shares (`getuserread`, `getusershare`, `getbizsummary` without the
//!   tail), which the hourly tables split over the hours: a day is the sum of its hours;
//! - passive replies: calls per hour along a diurnal curve, scaled by the followers; a day is the
//!   sum of its hours, and its maximum time the hours' maximum.
//!
//! Users are never simply added across articles, channels or hours: a combined figure lies
//! between the largest part's and the sum of the parts, as some people read several articles.

use std::f64::consts::TAU;
use std::fmt::Write as _;

use chrono::{Datelike, Days, NaiveDate, Weekday};

use super::data::{SimRow, SimValue};
use super::rng::{self, Rng};
use wxcube_registry::{DEFAULT_FLOOR, Table};

/// The rows dated `day` for `appid` in `table`; figures that keep growing after their day
/// (an article's running totals) as of `latest`, the latest published day.
pub fn rows(table: &Table, appid: &str, day: NaiveDate, latest: NaiveDate) -> Vec<SimRow> {
    let account = Account::new(appid);
    let mut out = Out { table, day, rows: Vec::new() };
    match table.endpoint.as_str() {
        "getusersummary" => account.user_summary(&mut out),
        "getusercumulate" => account.user_cumulate(&mut out),
        "getarticlesummary" => account.article_summary(&mut out),
        "getarticletotal" => account.article_total(&mut out, latest),
        "getuserread" => account.user_read(&mut out, false),
        "getuserreadhour" => account.user_read(&mut out, true),
        "getusershare" => account.user_share(&mut out, false),
        "getusersharehour" => account.user_share(&mut out, true),
        "getarticleread" => account.article_read(&mut out),
        "getarticleshare" => account.article_share(&mut out),
        "getbizsummary" => account.biz_summary(&mut out),
        "getarticletotaldetail" => account.article_total_detail(&mut out, latest),
        "getinterfacesummary" => account.interface(&mut out, false),
        "getinterfacesummaryhour" => account.interface(&mut out, true),
        _ => {}
    }
    out.rows
}

// Seed tags (data.rs uses 1–4), so that no two kinds of draws share a stream.
const TAG_PROFILE: u64 = 10;
const TAG_FOLLOWERS: u64 = 11;
const TAG_USER_SUMMARY: u64 = 12;
const TAG_SEND: u64 = 13;
const TAG_ARTICLE: u64 = 14;
const TAG_FIGURES: u64 = 15;
const TAG_TITLE: u64 = 16;
const TAG_READ_DAY: u64 = 17;
const TAG_READ_HOUR: u64 = 18;
const TAG_SHARE_DAY: u64 = 19;
const TAG_SHARE_HOUR: u64 = 20;
const TAG_DETAIL: u64 = 21;
const TAG_INTERFACE: u64 = 22;

/// `yyyymmdd` of a day that never comes.
const FOREVER: u32 = 99_991_231;

/// getusersummary's follow channels, sorted by code: (code, first day, first day without it,
/// range of its share of an account's follows, share of accounts that use it). A channel that
/// ended gives its share to 0, "其他合计" (from June 2023 follows after payment count in 0).
const FOLLOW: [(i64, u32, u32, f64, f64, f64); 15] = [
    (0, 0, FOREVER, 0.15, 0.35, 1.0),
    (1, 20160101, FOREVER, 0.10, 0.30, 1.0),
    (17, 0, FOREVER, 0.02, 0.08, 1.0),
    (30, 0, FOREVER, 0.10, 0.45, 1.0),
    (35, 0, 20160101, 0.05, 0.20, 1.0),
    (39, 0, 20160101, 0.05, 0.15, 1.0),
    (43, 0, 20160101, 0.01, 0.05, 1.0),
    (51, 20160101, 20230601, 0.02, 0.10, 0.3),
    (57, 20160101, FOREVER, 0.05, 0.20, 1.0),
    (100, 20200601, FOREVER, 0.05, 0.40, 0.25),
    (149, 20170109, FOREVER, 0.01, 0.06, 0.5),
    (161, 20200401, FOREVER, 0.01, 0.05, 1.0),
    // Not in the documented list; reported once as "专辑页内账号名称".
    (176, 20200601, FOREVER, 0.002, 0.008, 1.0),
    (200, 20200601, FOREVER, 0.01, 0.10, 0.6),
    (201, 20200601, FOREVER, 0.005, 0.03, 0.4),
];
const N_FOLLOW: usize = FOLLOW.len();

/// Where an article is read from, in this order: the account's message list (session), chats
/// (friends), Moments (feed), the account's home page (history), other, Top Stories
/// (kanyikan, 推荐) and Search (souyisou).
const N_SOURCES: usize = 7;
/// getuserread's `user_source` of each source; 99999999 is all of them.
const READ_CODES: [i64; N_SOURCES] = [0, 1, 2, 4, 5, 6, 7];
const ALL_SOURCES: i64 = 99_999_999;
/// The 2025 family's `scene_desc` of each source; "全部" (all) comes first.
const SCENE_DESC: [&str; N_SOURCES] = ["公众号消息", "聊天会话", "朋友圈", "公众号主页", "其他", "推荐", "搜一搜"];
const SCENE_ALL: &str = "全部";
/// getarticletotal's per-source fields.
const FROM_USER: [&str; N_SOURCES] = [
    "details.int_page_from_session_read_user",
    "details.int_page_from_friends_read_user",
    "details.int_page_from_feed_read_user",
    "details.int_page_from_hist_msg_read_user",
    "details.int_page_from_other_read_user",
    "details.int_page_from_kanyikan_read_user",
    "details.int_page_from_souyisou_read_user",
];
const FROM_COUNT: [&str; N_SOURCES] = [
    "details.int_page_from_session_read_count",
    "details.int_page_from_friends_read_count",
    "details.int_page_from_feed_read_count",
    "details.int_page_from_hist_msg_read_count",
    "details.int_page_from_other_read_count",
    "details.int_page_from_kanyikan_read_count",
    "details.int_page_from_souyisou_read_count",
];
/// Shares to Moments, by where the sharer read the article: session, feed, other.
const MOMENTS_USER: [&str; 3] =
    ["details.feed_share_from_session_user", "details.feed_share_from_feed_user", "details.feed_share_from_other_user"];
const MOMENTS_COUNT: [&str; 3] =
    ["details.feed_share_from_session_cnt", "details.feed_share_from_feed_cnt", "details.feed_share_from_other_cnt"];
/// Top Stories and Search opened in May 2017: no reads from them before.
const SEARCH_ERA: u32 = 20170519;
/// Sources of the reads of articles older than 30 days: mostly the home page and search.
const TAIL_SOURCES: [f64; N_SOURCES] = [0.10, 0.08, 0.05, 0.35, 0.15, 0.02, 0.25];
/// Days an article is followed (getarticletotaldetail) and read in the model.
const ARTICLE_DAYS: u32 = 30;
/// Days getarticlesummary and getarticletotal follow a mass-sent article.
const LEGACY_DAYS: u32 = 7;
/// Share of an article's readers on any day after its burst, however old.
const TRICKLE: f64 = 0.002;
/// Readers of the 2nd, 3rd, 4th article of a send, relative to the first.
const POSITION: [f64; 4] = [1.0, 0.35, 0.22, 0.15];
/// Tips (赞赏), in fen.
const TIPS: [u64; 10] = [100, 200, 500, 600, 800, 1000, 1888, 2000, 5000, 6666];
const SEND_HOURS: [u32; 10] = [7, 8, 11, 12, 17, 18, 19, 20, 21, 22];
/// msg_data_ids lie above 2^31 (`2247490098_1` in the docs): this plus a per-account offset
/// plus the day number of the send.
const MSG_DATA_ID_BASE: i64 = 2_247_480_000;
/// share_scene codes, in row order: friends, Moments, the undocumented 5, other.
const SHARE_SCENES: [i64; 4] = [1, 2, 5, 255];

/// Relative reading per Beijing hour: the morning commute, lunch, and the evening peak.
const READ_DIURNAL: [f64; 24] = [
    0.8, 0.4, 0.2, 0.15, 0.15, 0.3, 0.9, 1.8, 2.0, 1.6, 1.4, 1.6, 2.2, 2.0, 1.5, 1.4, 1.4, 1.5, 1.7, 1.9, 2.2, 2.6,
    2.5, 1.6,
];
/// Relative passive-reply calls per Beijing hour (people writing to the account).
const CALL_DIURNAL: [f64; 24] = [
    0.9, 0.5, 0.3, 0.2, 0.15, 0.2, 0.45, 1.0, 1.7, 2.2, 2.4, 2.5, 2.6, 2.2, 2.2, 2.3, 2.3, 2.2, 2.1, 2.4, 2.8, 3.0,
    2.5, 1.7,
];

const TITLE_PREFIXES: [&str; 8] = ["", "", "", "重磅｜", "干货｜", "速看！", "收藏｜", "今日推荐｜"];
const TITLE_TOPICS: [&str; 24] = [
    "秋季养生指南",
    "周末好去处",
    "新品上市",
    "年终盘点",
    "招聘启事",
    "会员福利",
    "行业观察",
    "产品更新说明",
    "活动回顾",
    "本周精选",
    "亲子阅读",
    "职场干货",
    "理财小课堂",
    "城市漫步",
    "家常菜谱",
    "数码评测",
    "读书笔记",
    "旅行攻略",
    "开学季",
    "节日特辑",
    "安全提示",
    "政策解读",
    "用户故事",
    "幕后花絮",
];
const TITLE_SUFFIXES: [&str; 8] =
    ["", "", "：你需要知道的5件事", "，一文读懂", "来了！", "（附攻略）", "，建议收藏", "全解析"];
const NEWSLETTERS: [&str; 4] = ["早报", "晚报", "日报", "资讯速递"];

/// The rows being built for one (table, day).
struct Out<'t> {
    table: &'t Table,
    day: NaiveDate,
    rows: Vec<SimRow>,
}

impl<'t> Out<'t> {
    fn row(&self) -> Row<'t> {
        Row { table: self.table, fields: vec![SimValue::Absent; self.table.api_fields.len()] }
    }

    fn push(&mut self, row: Row<'_>) {
        self.rows.push(SimRow { ref_date: self.day, fields: row.fields });
    }
}

/// One row's fields, set by API path; a path the table does not read is ignored.
#[derive(Clone)]
struct Row<'t> {
    table: &'t Table,
    fields: Vec<SimValue>,
}

impl Row<'_> {
    fn set(&mut self, path: &str, value: SimValue) -> &mut Self {
        if let Some(i) = self.table.field_index(path) {
            self.fields[i] = value;
        }
        self
    }

    fn int(&mut self, path: &str, value: u64) -> &mut Self {
        self.set(path, SimValue::Int(value as i64))
    }

    fn code(&mut self, path: &str, value: i64) -> &mut Self {
        self.set(path, SimValue::Int(value))
    }

    fn text(&mut self, path: &str, value: &str) -> &mut Self {
        self.set(path, SimValue::Text(value.to_string()))
    }
}

/// An account's habits, drawn once from its appid.
struct Profile {
    // Followers: cap × (start + (1 − start) × logistic((t − mid) / tau)), t in days since
    // 2014-12-01, times a slow decline after `mid`, plus a wiggle and some jumps.
    cap: f64,
    start: f64,
    mid: f64,
    tau: f64,
    decline: f64,
    wiggle: f64,
    wiggle_period: f64,
    wiggle_phase: f64,
    /// (day, followers gained) of the account's viral moments.
    jumps: [(f64, f64); 8],
    /// Share of the followers who leave on a day.
    churn: f64,
    follow: [f64; N_FOLLOW],
    // Publishing.
    posts_per_week: f64,
    weekend_posts: f64,
    /// Chance of each of up to three more articles in a send.
    multi: f64,
    send_hour: u32,
    newsletter: bool,
    id_offset: i64,
    /// `__biz` of the account's article links.
    biz: String,
    // Readers.
    open_rate: f64,
    repeat: f64,
    share_rate: f64,
    reshare: f64,
    moments_share: f64,
    fav_rate: f64,
    ori_chance: f64,
    zaikan_rate: f64,
    like_rate: f64,
    comment_rate: f64,
    tip_rate: f64,
    subscribe_rate: f64,
    viral_chance: f64,
    /// Reads of articles older than 30 days, per follower and day.
    tail_rate: f64,
    /// Share of the extra users who are different people, when combining articles, channels
    /// or hours.
    distinct: f64,
    /// Weights of share scenes 1, 2, 5 (some days only) and 255.
    scenes: [f64; 4],
    // Passive replies.
    calls_base: f64,
    calls_rate: f64,
    reply_ms: f64,
    fail_rate: f64,
}

impl Profile {
    fn of(seed: u64) -> Self {
        let mut r = Rng::new(rng::mix(seed, TAG_PROFILE));
        // Log-scaled between 100 and ~300 000 followers: most accounts are small.
        let size = r.unit();
        let cap = 10f64.powf(2.0 + 3.5 * size.powf(1.3));
        let start = r.between(0.005, 0.05);
        let mid = r.between(200.0, 3000.0);
        let tau = r.between(150.0, 900.0);
        let decline = if r.chance(0.4) { r.between(0.05, 0.5) } else { 0.0 };
        let wiggle = r.between(0.003, 0.015);
        let wiggle_period = r.between(60.0, 240.0);
        let wiggle_phase = r.between(0.0, TAU);
        let jumps = std::array::from_fn(|_| (r.between(0.0, 4200.0), cap * 10f64.powf(r.between(-2.7, -1.2))));
        let churn = r.between(0.0003, 0.0015);
        let follow = FOLLOW.map(|(_, _, _, lo, hi, adopted)| if r.chance(adopted) { r.between(lo, hi) } else { 0.0 });
        let posts_per_week = 1.0 + 6.0 * r.unit().powf(1.5);
        let weekend_posts = r.between(0.3, 1.1);
        let multi = if r.chance(0.45) { r.between(0.2, 0.6) } else { 0.0 };
        let send_hour = SEND_HOURS[pick(&mut r, SEND_HOURS.len())];
        let newsletter = r.chance(0.15);
        let id_offset = (r.next_u64() % 3000) as i64;
        let biz = base64((3_000_000_000 + r.next_u64() % 1_000_000_000).to_string().as_bytes());
        Profile {
            cap,
            start,
            mid,
            tau,
            decline,
            wiggle,
            wiggle_period,
            wiggle_phase,
            jumps,
            churn,
            follow,
            posts_per_week,
            weekend_posts,
            multi,
            send_hour,
            newsletter,
            id_offset,
            biz,
            // Small accounts are read by a larger share of their followers.
            open_rate: r.between(0.03, 0.15) * (1.3 - 0.6 * size),
            repeat: r.between(0.05, 0.35),
            share_rate: r.between(0.01, 0.06),
            reshare: r.between(0.1, 0.5),
            moments_share: r.between(0.2, 0.45),
            fav_rate: r.between(0.003, 0.03),
            ori_chance: r.between(0.1, 0.5),
            zaikan_rate: r.between(0.003, 0.03),
            like_rate: r.between(0.005, 0.05),
            comment_rate: r.between(0.001, 0.01),
            tip_rate: if r.chance(0.25) { r.between(0.0005, 0.004) } else { 0.0 },
            subscribe_rate: r.between(0.002, 0.02),
            viral_chance: r.between(0.005, 0.03),
            tail_rate: r.between(0.0005, 0.004),
            distinct: r.between(0.6, 0.9),
            scenes: [r.between(0.5, 0.7), r.between(0.25, 0.4), r.between(0.02, 0.08), r.between(0.03, 0.1)],
            calls_base: r.between(2.0, 6.0),
            calls_rate: r.between(0.001, 0.02),
            reply_ms: 10f64.powf(r.between(1.5, 2.7)),
            fail_rate: 10f64.powf(r.between(-3.3, -1.7)),
        }
    }
}

/// A mass-send (or, since 2021, a publication without notification) on one day.
#[derive(Clone, Copy)]
struct Send {
    date: NaiveDate,
    articles: usize,
    hour: u32,
    /// 0 notified (群发), 1 notification off, 2 seen in real data, undocumented.
    publish_type: i64,
    msg_data_id: i64,
}

/// One article of a send, and what its readers will do.
struct Article {
    date: NaiveDate,
    index: usize,
    msg_data_id: i64,
    publish_type: i64,
    seed: u64,
    /// Delivered to (≈ the followers of its day).
    target: u64,
    /// Expected readers over its 30 days.
    expect: f64,
    /// Share of them on the day it is sent, and the decay of the following days.
    first_day: f64,
    decay: f64,
    /// How much it travels through chats and Moments (viral articles: a lot).
    spread: f64,
    /// Readers who open its "read original" link (0: it has none).
    ori_rate: f64,
    /// Minutes to read it all.
    length_min: f64,
    /// Where readers leave it: the five fifths of the page.
    exits: [f64; 5],
}

impl Article {
    fn msgid(&self) -> String {
        format!("{}_{}", self.msg_data_id, self.index + 1)
    }

    /// Share of the article's readers on day `k` after it was sent.
    fn weight(&self, k: u32) -> f64 {
        match k {
            0 => self.first_day,
            _ => (1.0 - self.first_day) * (1.0 - self.decay) * self.decay.powi(k as i32 - 1) + TRICKLE,
        }
    }

    /// Weights of the reading sources on day `k`, which is `day`.
    fn sources(&self, k: u32, day: NaiveDate) -> [f64; N_SOURCES] {
        let k = f64::from(k);
        let search = ymd(day) >= SEARCH_ERA;
        [
            0.05 + 0.7 * 0.45f64.powf(k),
            0.06 * self.spread,
            0.05 * self.spread,
            0.03 + 0.05 * (k / 5.0).min(1.0),
            0.02,
            if search { 0.015 * self.spread } else { 0.0 },
            if search { 0.02 + 0.06 * (k / 10.0).min(1.0) } else { 0.0 },
        ]
    }
}

/// An article's figures for one day, or (added up) from its send to a day.
#[derive(Clone, Copy, Default)]
struct Figures {
    read_user: u64,
    read_count: u64,
    source_user: [u64; N_SOURCES],
    source_count: [u64; N_SOURCES],
    ori_user: u64,
    ori_count: u64,
    share_user: u64,
    share_count: u64,
    /// Shares to Moments by where the sharer read it: session, feed, other.
    moments_user: [u64; 3],
    moments_count: [u64; 3],
    fav_user: u64,
    fav_count: u64,
    zaikan_user: u64,
    like_user: u64,
    comment_count: u64,
    praise_money: u64,
    subscribe_user: u64,
}

impl Figures {
    fn add(&mut self, o: &Figures) {
        fn add_all<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self.read_user += o.read_user;
        self.read_count += o.read_count;
        add_all(&mut self.source_user, &o.source_user);
        add_all(&mut self.source_count, &o.source_count);
        self.ori_user += o.ori_user;
        self.ori_count += o.ori_count;
        self.share_user += o.share_user;
        self.share_count += o.share_count;
        add_all(&mut self.moments_user, &o.moments_user);
        add_all(&mut self.moments_count, &o.moments_count);
        self.fav_user += o.fav_user;
        self.fav_count += o.fav_count;
        self.zaikan_user += o.zaikan_user;
        self.like_user += o.like_user;
        self.comment_count += o.comment_count;
        self.praise_money += o.praise_money;
        self.subscribe_user += o.subscribe_user;
    }

    /// getarticlesummary lists an article only when this reaches 3.
    fn summary_score(&self) -> u64 {
        self.read_user + self.ori_user + self.share_user + self.share_count + self.fav_count
    }
}

/// Users of several parts (articles, channels, hours): the sum and the largest part.
#[derive(Clone, Copy, Default)]
struct Users {
    sum: u64,
    max: u64,
}

impl Users {
    fn of(parts: &[u64]) -> Self {
        let mut u = Users::default();
        parts.iter().for_each(|&p| u.add(p));
        u
    }

    fn add(&mut self, v: u64) {
        self.sum += v;
        self.max = self.max.max(v);
    }

    /// The distinct users: the largest part plus a share `distinct` of the others.
    fn distinct(self, distinct: f64) -> u64 {
        self.max + ((self.sum - self.max) as f64 * distinct).floor() as u64
    }
}

/// The articles read on a day, summed: the 2025 family's account row, and the legacy
/// account-level tables before the tail of older articles.
#[derive(Default)]
struct Sums {
    read: Users,
    sources: [Users; N_SOURCES],
    source_count: [u64; N_SOURCES],
    /// Reads of the articles sent that day, which follow the send hour.
    fresh_count: [u64; N_SOURCES],
    share: Users,
    share_count: u64,
    ori: Users,
    ori_count: u64,
    fav: Users,
    fav_count: u64,
    zaikan: Users,
    like: Users,
    comments: u64,
    sent_today: u64,
    send_hour: Option<u32>,
}

/// An account's reads and shares of a day, by getuserread's channels.
#[derive(Default)]
struct ReadDay {
    users: [u64; N_SOURCES],
    counts: [u64; N_SOURCES],
    fresh: [u64; N_SOURCES],
    share_users: [u64; N_SOURCES],
    share_counts: [u64; N_SOURCES],
    all_users: u64,
    all_count: u64,
    all_share_users: u64,
    all_share_count: u64,
    ori_user: u64,
    ori_count: u64,
    fav_user: u64,
    fav_count: u64,
    send_hour: Option<u32>,
}

/// A [`ReadDay`] by hour: per channel and hour, then all channels per hour.
#[derive(Default)]
struct ReadHours {
    counts: [[u64; 24]; N_SOURCES],
    users: [[u64; 24]; N_SOURCES],
    share_counts: [[u64; 24]; N_SOURCES],
    share_users: [[u64; 24]; N_SOURCES],
    all_counts: [u64; 24],
    all_users: [u64; 24],
    all_share_counts: [u64; 24],
    all_share_users: [u64; 24],
    ori_counts: [u64; 24],
    ori_users: [u64; 24],
    fav_counts: [u64; 24],
    fav_users: [u64; 24],
}

/// Passive replies of one hour (or, added up, of a day).
#[derive(Clone, Copy, Default)]
struct Calls {
    count: u64,
    fails: u64,
    total_ms: u64,
    max_ms: u64,
}

struct Account {
    seed: u64,
    p: Profile,
}

impl Account {
    fn new(appid: &str) -> Self {
        let seed = rng::fnv1a(appid.as_bytes());
        Account { seed, p: Profile::of(seed) }
    }

    fn rng(&self, tag: u64, day: NaiveDate) -> Rng {
        Rng::new(rng::mix(rng::mix(self.seed, tag), rng::date_part(day)))
    }

    // ---- followers ----

    fn trend(&self, t: f64) -> f64 {
        let p = &self.p;
        let grown = 1.0 / (1.0 + (-(t - p.mid) / p.tau).exp());
        let decline = (-p.decline * (t - p.mid).max(0.0) / 3650.0).exp();
        p.cap * (p.start + (1.0 - p.start) * grown) * decline
    }

    /// Total followers at the end of `day`: closed form, the same cost for any day.
    fn followers(&self, day: NaiveDate) -> u64 {
        let p = &self.p;
        let t = (day - DEFAULT_FLOOR).num_days() as f64;
        let trend = self.trend(t);
        let wiggle = trend * p.wiggle * (TAU * t / p.wiggle_period + p.wiggle_phase).sin();
        let jumps: f64 = p.jumps.iter().map(|&(t0, size)| size * ((t - t0 + 1.0) / 3.0).clamp(0.0, 1.0)).sum();
        let wobble = 0.35 * (trend * p.churn).sqrt() * self.rng(TAG_FOLLOWERS, day).normal();
        (trend + wiggle + jumps + wobble).round().max(0.0) as u64
    }

    fn user_cumulate(&self, out: &mut Out) {
        let mut row = out.row();
        row.int("cumulate_user", self.followers(out.day)).code("user_source", 0);
        out.push(row);
    }

    fn user_summary(&self, out: &mut Out) {
        let day = out.day;
        let today = self.followers(day);
        let net = today as i64 - self.followers(day - Days::new(1)) as i64;
        let mut r = self.rng(TAG_USER_SUMMARY, day);
        let noise = (0.25 * r.normal() - 0.03).exp();
        let cancel = r.poisson(today as f64 * self.p.churn * noise) + (-net).max(0) as u64;
        let new = (net + cancel as i64) as u64;
        let date = ymd(day);
        let mut weights = [0.0; N_FOLLOW];
        for (i, &(_, from, until, _, _, _)) in FOLLOW.iter().enumerate() {
            let share = self.p.follow[i] * (0.3 * r.normal()).exp();
            if date >= until {
                weights[0] += self.p.follow[i];
            } else if date >= from {
                weights[i] += share;
            }
        }
        let (mut news, mut cancels) = ([0; N_FOLLOW], [0; N_FOLLOW]);
        split(new, &weights, &mut r, &mut news);
        split(cancel, &weights, &mut r, &mut cancels);
        let mut any = false;
        for (i, &(code, ..)) in FOLLOW.iter().enumerate() {
            if news[i] + cancels[i] > 0 {
                let mut row = out.row();
                row.code("user_source", code).int("new_user", news[i]).int("cancel_user", cancels[i]);
                out.push(row);
                any = true;
            }
        }
        if !any {
            // A day without any follow or unfollow: one row of zeros.
            let mut row = out.row();
            row.code("user_source", 0).int("new_user", 0).int("cancel_user", 0);
            out.push(row);
        }
    }

    // ---- articles ----

    /// The send of `date`, if the account sent anything that day.
    fn send(&self, date: NaiveDate) -> Option<Send> {
        let p = &self.p;
        let mut r = self.rng(TAG_SEND, date);
        let weekday = if is_weekend(date) { p.weekend_posts } else { 1.0 };
        if !r.chance((p.posts_per_week / 7.0 * weekday).min(0.97)) {
            return None;
        }
        let articles = 1 + (0..3).filter(|_| r.chance(p.multi)).count();
        let hour = (p.send_hour as i64 + [-1, 0, 0, 1][pick(&mut r, 4)]).clamp(6, 23) as u32;
        let publish_type = if ymd(date) < 20210101 {
            0
        } else {
            match r.unit() {
                u if u < 0.85 => 0,
                u if u < 0.97 => 1,
                _ => 2,
            }
        };
        let msg_data_id = MSG_DATA_ID_BASE + p.id_offset + (date - DEFAULT_FLOOR).num_days();
        Some(Send { date, articles, hour, publish_type, msg_data_id })
    }

    fn articles(&self, send: &Send) -> Vec<Article> {
        let p = &self.p;
        let followers = self.followers(send.date) as f64;
        (0..send.articles)
            .map(|index| {
                let seed =
                    rng::mix(rng::mix(rng::mix(self.seed, TAG_ARTICLE), rng::date_part(send.date)), index as u64);
                let mut r = Rng::new(seed);
                let target = (followers * r.between(0.95, 0.995)).round() as u64;
                let viral = r.chance(p.viral_chance);
                let spread = if viral { r.between(4.0, 12.0) } else { (0.4 * r.normal()).exp() };
                let quality = (0.5 * r.normal() - 0.125).exp() * if viral { 1.0 + 0.5 * spread } else { 1.0 };
                // A late send leaves less of its first day for reading.
                let late = ((24.0 - f64::from(send.hour)) / 14.0).clamp(0.35, 1.0);
                let exits = [r.between(0.15, 0.45), r.between(0.08, 0.2), r.between(0.05, 0.15), r.between(0.04, 0.1)];
                let finish = r.between(0.2, 0.6);
                Article {
                    date: send.date,
                    index,
                    msg_data_id: send.msg_data_id,
                    publish_type: send.publish_type,
                    seed,
                    target,
                    expect: target as f64 * p.open_rate * POSITION[index] * quality,
                    first_day: r.between(0.45, 0.65) * late,
                    decay: if viral { r.between(0.6, 0.75) } else { r.between(0.3, 0.5) },
                    spread,
                    ori_rate: if r.chance(p.ori_chance) { r.between(0.005, 0.05) } else { 0.0 },
                    length_min: r.between(1.0, 6.0),
                    exits: [exits[0], exits[1], exits[2], exits[3], finish],
                }
            })
            .collect()
    }

    fn title(&self, a: &Article) -> String {
        let mut r = Rng::new(rng::mix(a.seed, TAG_TITLE));
        if self.p.newsletter && a.index == 0 {
            let name = NEWSLETTERS[(self.seed % NEWSLETTERS.len() as u64) as usize];
            return format!("{}月{}日 {name}", a.date.month(), a.date.day());
        }
        let prefix = TITLE_PREFIXES[pick(&mut r, TITLE_PREFIXES.len())];
        let topic = TITLE_TOPICS[pick(&mut r, TITLE_TOPICS.len())];
        let suffix = TITLE_SUFFIXES[pick(&mut r, TITLE_SUFFIXES.len())];
        format!("{prefix}{topic}{suffix}")
    }

    fn url(&self, a: &Article, scheme: &str) -> String {
        let sn = rng::mix(a.seed, 0x5e);
        format!(
            "{scheme}://mp.weixin.qq.com/s?__biz={}&mid={}&idx={}&sn={:016x}{:016x}#rd",
            self.p.biz,
            a.msg_data_id,
            a.index + 1,
            sn,
            rng::mix(sn, 1)
        )
    }

    /// What the readers of `a` did on day `k` after it was sent.
    fn figures(&self, a: &Article, k: u32) -> Figures {
        let p = &self.p;
        let mut r = Rng::new(rng::mix(rng::mix(a.seed, TAG_FIGURES), u64::from(k)));
        let noise = (0.3 * r.normal() - 0.045).exp();
        let read_user = r.poisson(a.expect * a.weight(k) * noise);
        let mut f = Figures::default();
        if read_user == 0 {
            return f;
        }
        f.read_user = read_user;
        f.read_count = read_user + r.poisson(read_user as f64 * p.repeat);
        split(read_user, &a.sources(k, a.date + Days::new(k.into())), &mut r, &mut f.source_user);
        let mut again = [0; N_SOURCES];
        split(f.read_count - read_user, &f.source_user.map(|u| u as f64), &mut r, &mut again);
        f.source_count = std::array::from_fn(|c| f.source_user[c] + again[c]);
        f.ori_user = binomial(read_user, a.ori_rate, &mut r);
        f.ori_count = f.ori_user + r.poisson(f.ori_user as f64 * 0.25);
        f.share_user = binomial(read_user, (p.share_rate * a.spread.sqrt()).min(0.3), &mut r);
        f.share_count = f.share_user + r.poisson(f.share_user as f64 * p.reshare);
        let moments = binomial(f.share_user, p.moments_share, &mut r);
        if moments > 0 {
            let u = &f.source_user;
            let weights = [(u[0] + u[3]) as f64 + 1.0, u[2] as f64 + 0.5, (u[1] + u[4] + u[5] + u[6]) as f64 + 0.5];
            split(moments, &weights, &mut r, &mut f.moments_user);
            let more = binomial(f.share_count - f.share_user, p.moments_share, &mut r);
            let mut extra = [0; 3];
            split(more, &f.moments_user.map(|u| u as f64), &mut r, &mut extra);
            f.moments_count = std::array::from_fn(|i| f.moments_user[i] + extra[i]);
        }
        f.fav_user = binomial(read_user, p.fav_rate, &mut r);
        f.fav_count = f.fav_user + r.poisson(f.fav_user as f64 * 0.1);
        f.zaikan_user = binomial(read_user, p.zaikan_rate, &mut r);
        f.like_user = binomial(read_user, p.like_rate, &mut r);
        f.comment_count = r.poisson(read_user as f64 * p.comment_rate);
        let tippers = r.poisson(read_user as f64 * p.tip_rate);
        f.praise_money = (0..tippers).map(|_| TIPS[pick(&mut r, TIPS.len())]).sum();
        // Follows after reading come from readers who did not follow yet.
        let outsiders = read_user - f.source_user[0] - f.source_user[3];
        f.subscribe_user = binomial(outsiders, p.subscribe_rate, &mut r);
        f
    }

    /// Calls `each(article, k)` for every article sent in the `days` days up to `day`, `k` days
    /// before it, oldest first (so by msgid).
    fn recent(&self, day: NaiveDate, days: u32, mut each: impl FnMut(&Article, u32)) {
        for k in (0..days).rev() {
            if let Some(send) = self.send(day - Days::new(k.into())) {
                self.articles(&send).iter().for_each(|a| each(a, k));
            }
        }
    }

    fn sums(&self, day: NaiveDate) -> Sums {
        let mut s = Sums::default();
        if let Some(send) = self.send(day) {
            s.sent_today = send.articles as u64;
            s.send_hour = Some(send.hour);
        }
        self.recent(day, ARTICLE_DAYS, |a, k| {
            let f = self.figures(a, k);
            s.read.add(f.read_user);
            for c in 0..N_SOURCES {
                s.sources[c].add(f.source_user[c]);
                s.source_count[c] += f.source_count[c];
                if k == 0 {
                    s.fresh_count[c] += f.source_count[c];
                }
            }
            s.share.add(f.share_user);
            s.share_count += f.share_count;
            s.ori.add(f.ori_user);
            s.ori_count += f.ori_count;
            s.fav.add(f.fav_user);
            s.fav_count += f.fav_count;
            s.zaikan.add(f.zaikan_user);
            s.like.add(f.like_user);
            s.comments += f.comment_count;
        });
        s
    }

    fn article_summary(&self, out: &mut Out) {
        self.recent(out.day, LEGACY_DAYS, |a, k| {
            if a.publish_type != 0 {
                return;
            }
            let f = self.figures(a, k);
            if f.summary_score() < 3 {
                return;
            }
            let mut row = out.row();
            row.text("msgid", &a.msgid())
                .text("title", &self.title(a))
                .int("int_page_read_user", f.read_user)
                .int("int_page_read_count", f.read_count)
                .int("ori_page_read_user", f.ori_user)
                .int("ori_page_read_count", f.ori_count)
                .int("share_user", f.share_user)
                .int("share_count", f.share_count)
                .int("add_to_fav_user", f.fav_user)
                .int("add_to_fav_count", f.fav_count);
            out.push(row);
        });
    }

    fn article_total(&self, out: &mut Out, latest: NaiveDate) {
        let Some(send) = self.send(out.day).filter(|s| s.publish_type == 0) else { return };
        let last = days_tracked(out.day, latest, LEGACY_DAYS);
        for a in self.articles(&send) {
            let mut head = out.row();
            head.text("msgid", &a.msgid())
                .text("title", &self.title(&a))
                .code("user_source", 0)
                .text("url", &self.url(&a, "http"));
            let mut total = Figures::default();
            for k in 0..=last {
                total.add(&self.figures(&a, k));
                let t = &total;
                let mut row = head.clone();
                row.text("details.stat_date", &(a.date + Days::new(k.into())).to_string())
                    .int("details.target_user", a.target)
                    .int("details.int_page_read_user", t.read_user)
                    .int("details.int_page_read_count", t.read_count)
                    .int("details.ori_page_read_user", t.ori_user)
                    .int("details.ori_page_read_count", t.ori_count)
                    .int("details.share_user", t.share_user)
                    .int("details.share_count", t.share_count)
                    .int("details.add_to_fav_user", t.fav_user)
                    .int("details.add_to_fav_count", t.fav_count);
                for c in 0..N_SOURCES {
                    row.int(FROM_USER[c], t.source_user[c]).int(FROM_COUNT[c], t.source_count[c]);
                }
                for i in 0..3 {
                    row.int(MOMENTS_USER[i], t.moments_user[i]).int(MOMENTS_COUNT[i], t.moments_count[i]);
                }
                out.push(row);
            }
        }
    }

    // ---- account-level reads and shares (legacy) ----

    fn read_day(&self, day: NaiveDate) -> ReadDay {
        let p = &self.p;
        let s = self.sums(day);
        let mut r = self.rng(TAG_READ_DAY, day);
        // Reads of older articles: the home page and search keep bringing some.
        let weekday = if is_weekend(day) { 0.85 } else { 1.0 };
        let noise = (0.3 * r.normal() - 0.045).exp();
        let tail = r.poisson(self.followers(day) as f64 * p.tail_rate * weekday * noise);
        let search = ymd(day) >= SEARCH_ERA;
        let weights: [f64; N_SOURCES] = std::array::from_fn(|c| if c >= 5 && !search { 0.0 } else { TAIL_SOURCES[c] });
        let mut tail_users = [0; N_SOURCES];
        split(tail, &weights, &mut r, &mut tail_users);
        let mut d = ReadDay { send_hour: s.send_hour, ..ReadDay::default() };
        for (c, &tail) in tail_users.iter().enumerate() {
            let mut users = s.sources[c];
            users.add(tail);
            d.users[c] = users.distinct(p.distinct);
            d.counts[c] = s.source_count[c] + tail + r.poisson(tail as f64 * 0.15);
        }
        d.fresh = s.fresh_count;
        let tail_sharers = binomial(tail, p.share_rate * 0.5, &mut r);
        let sharers = s.share.sum + tail_sharers;
        let shares = s.share_count + tail_sharers + r.poisson(tail_sharers as f64 * p.reshare);
        split(sharers, &d.counts.map(|c| c as f64), &mut r, &mut d.share_users);
        let mut again = [0; N_SOURCES];
        split(shares - sharers, &d.share_users.map(|u| u as f64), &mut r, &mut again);
        d.share_counts = std::array::from_fn(|c| d.share_users[c] + again[c]);
        d.all_users = Users::of(&d.users).distinct(p.distinct);
        d.all_count = d.counts.iter().sum();
        d.all_share_users = Users::of(&d.share_users).distinct(p.distinct);
        d.all_share_count = d.share_counts.iter().sum();
        d.ori_user = s.ori.distinct(p.distinct);
        d.ori_count = s.ori_count;
        d.fav_user = s.fav.distinct(p.distinct);
        d.fav_count = s.fav_count;
        d
    }

    /// `d` spread over the hours: today's articles along their send hour, the others along the
    /// day's curve. Every count of the day is the sum of its hours.
    fn read_hours(&self, day: NaiveDate, d: &ReadDay) -> ReadHours {
        let mut r = self.rng(TAG_READ_HOUR, day);
        let fresh_curve = fresh_curve(d.send_hour);
        let mut h = ReadHours::default();
        for c in 0..N_SOURCES {
            let (mut fresh, mut older) = ([0; 24], [0; 24]);
            split(d.fresh[c], &fresh_curve, &mut r, &mut fresh);
            split(d.counts[c] - d.fresh[c], &READ_DIURNAL, &mut r, &mut older);
            h.counts[c] = std::array::from_fn(|i| fresh[i] + older[i]);
            h.users[c] = hour_users(&h.counts[c], d.users[c]);
            // People share as they read.
            split(d.share_counts[c], &h.counts[c].map(|n| n as f64), &mut r, &mut h.share_counts[c]);
            h.share_users[c] = hour_users(&h.share_counts[c], d.share_users[c]);
        }
        let sum = |m: &[[u64; 24]; N_SOURCES]| -> [u64; 24] { std::array::from_fn(|i| m.iter().map(|c| c[i]).sum()) };
        (h.all_counts, h.all_share_counts) = (sum(&h.counts), sum(&h.share_counts));
        // An hour's readers of all channels are at least its largest channel's.
        let at_least = |mut all: [u64; 24], parts: &[[u64; 24]; N_SOURCES], day_users: u64| {
            for (i, u) in all.iter_mut().enumerate() {
                let largest = parts.iter().map(|c| c[i]).max().unwrap_or(0);
                *u = (*u).max(largest).min(day_users);
            }
            all
        };
        h.all_users = at_least(hour_users(&h.all_counts, d.all_users), &h.users, d.all_users);
        h.all_share_users =
            at_least(hour_users(&h.all_share_counts, d.all_share_users), &h.share_users, d.all_share_users);
        let weights = h.all_counts.map(|n| n as f64);
        split(d.ori_count, &weights, &mut r, &mut h.ori_counts);
        split(d.fav_count, &weights, &mut r, &mut h.fav_counts);
        h.ori_users = hour_users(&h.ori_counts, d.ori_user);
        h.fav_users = hour_users(&h.fav_counts, d.fav_user);
        h
    }

    fn user_read(&self, out: &mut Out, hourly: bool) {
        let d = self.read_day(out.day);
        if d.all_count == 0 {
            return;
        }
        if !hourly {
            let mut all = out.row();
            all.code("user_source", ALL_SOURCES)
                .int("int_page_read_user", d.all_users)
                .int("int_page_read_count", d.all_count)
                .int("ori_page_read_user", d.ori_user)
                .int("ori_page_read_count", d.ori_count)
                .int("share_user", d.all_share_users)
                .int("share_count", d.all_share_count)
                .int("add_to_fav_user", d.fav_user)
                .int("add_to_fav_count", d.fav_count);
            out.push(all);
            for c in (0..N_SOURCES).filter(|&c| d.counts[c] > 0) {
                // Only the 99999999 row carries the original page and favourites.
                let mut row = out.row();
                row.code("user_source", READ_CODES[c])
                    .int("int_page_read_user", d.users[c])
                    .int("int_page_read_count", d.counts[c])
                    .int("share_user", d.share_users[c])
                    .int("share_count", d.share_counts[c]);
                out.push(row);
            }
            return;
        }
        let h = self.read_hours(out.day, &d);
        for i in (0..24).filter(|&i| h.all_counts[i] > 0) {
            let mut all = out.row();
            all.int("ref_hour", i as u64 * 100)
                .code("user_source", ALL_SOURCES)
                .int("int_page_read_user", h.all_users[i])
                .int("int_page_read_count", h.all_counts[i])
                .int("ori_page_read_user", h.ori_users[i])
                .int("ori_page_read_count", h.ori_counts[i])
                .int("share_user", h.all_share_users[i])
                .int("share_count", h.all_share_counts[i])
                .int("add_to_fav_user", h.fav_users[i])
                .int("add_to_fav_count", h.fav_counts[i]);
            out.push(all);
            for c in (0..N_SOURCES).filter(|&c| h.counts[c][i] > 0) {
                let mut row = out.row();
                row.int("ref_hour", i as u64 * 100)
                    .code("user_source", READ_CODES[c])
                    .int("int_page_read_user", h.users[c][i])
                    .int("int_page_read_count", h.counts[c][i])
                    .int("share_user", h.share_users[c][i])
                    .int("share_count", h.share_counts[c][i]);
                out.push(row);
            }
        }
    }

    fn user_share(&self, out: &mut Out, hourly: bool) {
        let d = self.read_day(out.day);
        if d.all_share_count == 0 {
            return;
        }
        let mut r = self.rng(TAG_SHARE_DAY, out.day);
        let with_five = r.chance(0.15);
        let mut weights = self.p.scenes.map(|w| w * (0.2 * r.normal()).exp());
        if !with_five {
            weights[2] = 0.0;
        }
        let mut counts = [0; 4];
        split(d.all_share_count, &weights, &mut r, &mut counts);
        let ratio = (d.all_share_users as f64 / d.all_share_count as f64 * 1.1).min(1.0);
        let users = counts.map(|n| ((n as f64 * ratio).ceil() as u64).min(n).min(d.all_share_users.max(1)));
        if !hourly {
            for (s, &code) in SHARE_SCENES.iter().enumerate().filter(|&(s, _)| counts[s] > 0) {
                let mut row = out.row();
                row.code("share_scene", code).int("share_count", counts[s]).int("share_user", users[s]);
                out.push(row);
            }
            return;
        }
        // The hours of getuserreadhour's shares, split over the scenes.
        let hour_totals = self.read_hours(out.day, &d).all_share_counts;
        let hours = allocate(&hour_totals, &counts, &mut self.rng(TAG_SHARE_HOUR, out.day));
        let sharers = std::array::from_fn::<_, 4, _>(|s| hour_users(&hours[s], users[s]));
        for i in 0..24 {
            for (s, &code) in SHARE_SCENES.iter().enumerate().filter(|&(s, _)| hours[s][i] > 0) {
                let mut row = out.row();
                row.int("ref_hour", i as u64 * 100)
                    .code("share_scene", code)
                    .int("share_count", hours[s][i])
                    .int("share_user", sharers[s][i]);
                out.push(row);
            }
        }
    }

    // ---- the 2025 "发表内容" family ----

    fn article_read(&self, out: &mut Out) {
        self.recent(out.day, ARTICLE_DAYS, |a, k| {
            let f = self.figures(a, k);
            if f.read_user > 0 {
                let mut row = out.row();
                row.text("msgid", &a.msgid())
                    .int("detail.read_user", f.read_user)
                    .set("detail.read_user_source", sources_json(f.read_user, &f.source_user));
                out.push(row);
            }
        });
    }

    fn article_share(&self, out: &mut Out) {
        self.recent(out.day, ARTICLE_DAYS, |a, k| {
            let f = self.figures(a, k);
            if f.share_user > 0 {
                let mut row = out.row();
                row.text("msgid", &a.msgid()).int("detail.share_user", f.share_user);
                out.push(row);
            }
        });
    }

    fn biz_summary(&self, out: &mut Out) {
        let s = self.sums(out.day);
        let distinct = self.p.distinct;
        let read_user = s.read.distinct(distinct);
        let sources = s.sources.map(|u| u.distinct(distinct).min(read_user));
        let mut row = out.row();
        row.int("detail.read_user", read_user)
            .set("detail.read_user_source", sources_json(read_user, &sources))
            .int("detail.share_user", s.share.distinct(distinct))
            .int("detail.zaikan_user", s.zaikan.distinct(distinct))
            .int("detail.like_user", s.like.distinct(distinct))
            .int("detail.comment_count", s.comments)
            .int("detail.collection_user", s.fav.distinct(distinct))
            .int("detail.redirect_ori_page_user", s.ori.distinct(distinct))
            .int("detail.send_page_count", s.sent_today);
        out.push(row);
    }

    fn article_total_detail(&self, out: &mut Out, latest: NaiveDate) {
        let Some(send) = self.send(out.day) else { return };
        let last = days_tracked(out.day, latest, ARTICLE_DAYS);
        for a in self.articles(&send) {
            let mut head = out.row();
            head.text("msgid", &a.msgid())
                .code("publish_type", a.publish_type)
                .text("title", &self.title(&a))
                .text("content_url", &self.url(&a, "https"));
            let mut total = Figures::default();
            for k in 0..=last {
                total.add(&self.figures(&a, k));
                let t = &total;
                let mut row = head.clone();
                row.text("detail_list.stat_date", &(a.date + Days::new(k.into())).to_string())
                    .int("detail_list.read_user", t.read_user)
                    .set("detail_list.read_user_source", sources_json(t.read_user, &t.source_user))
                    .int("detail_list.share_user", t.share_user)
                    .int("detail_list.zaikan_user", t.zaikan_user)
                    .int("detail_list.like_user", t.like_user)
                    .int("detail_list.comment_count", t.comment_count)
                    .int("detail_list.collection_user", t.fav_user)
                    .int("detail_list.praise_money", t.praise_money)
                    .int("detail_list.read_subscribe_user", t.subscribe_user);
                self.reading_quality(&a, k, t, &mut row);
                out.push(row);
            }
        }
    }

    /// The rates, average time and exit positions of `a`'s readers up to day `k`. The service
    /// computes them in single precision and prints twelve decimals (0.666666686535).
    fn reading_quality(&self, a: &Article, k: u32, total: &Figures, row: &mut Row) {
        let mut r = Rng::new(rng::mix(rng::mix(a.seed, TAG_DETAIL), u64::from(k)));
        let (mut delivery, mut finish, mut active, mut micros) = (0.0, 0.0, 0.0, [0u64; 5]);
        if total.read_user > 0 {
            delivery = (total.read_user as f64 / a.target.max(1) as f64).min(1.0);
            // Where a sample of the readers left the page, as shares of a million.
            let n = total.read_user.min(2000);
            let mut exits = [0; 5];
            split(n, &a.exits, &mut r, &mut exits);
            for i in 0..4 {
                micros[i] = exits[i] * 1_000_000 / n;
            }
            micros[4] = 1_000_000 - micros[..4].iter().sum::<u64>();
            finish = (exits[4] + binomial(exits[3], 0.3, &mut r)) as f64 / n as f64;
            // An average over more readers moves less from one day to the next.
            let sigma = 0.2 / (1.0 + total.read_user as f64 / 20.0).sqrt();
            active = a.length_min * (0.25 + 0.75 * finish) * (sigma * r.normal()).exp();
        }
        row.set("detail_list.read_delivery_rate", SimValue::float(single(delivery)))
            .set("detail_list.read_finish_rate", SimValue::float(single(finish)))
            .set("detail_list.read_avg_activetime", SimValue::float(single(active)))
            .set("detail_list.read_jump_position", jumps_json(&micros));
    }

    // ---- interface ----

    fn calls(&self, day: NaiveDate) -> [Calls; 24] {
        let p = &self.p;
        let mut r = self.rng(TAG_INTERFACE, day);
        let mut hours = [Calls::default(); 24];
        if r.chance(0.01) {
            // The account's server was switched off all day.
            return hours;
        }
        let weekday = if is_weekend(day) { 0.8 } else { 1.0 };
        let noise = (0.25 * r.normal() - 0.03).exp();
        let volume = (p.calls_base + self.followers(day) as f64 * p.calls_rate) * weekday * noise;
        let bad_hour = if r.chance(0.03) { Some(pick(&mut r, 24)) } else { None };
        let curve_total: f64 = CALL_DIURNAL.iter().sum();
        for (h, calls) in hours.iter_mut().enumerate() {
            let noise = (0.15 * r.normal()).exp();
            let count = r.poisson(volume * CALL_DIURNAL[h] / curve_total * noise);
            if count == 0 {
                continue;
            }
            let avg = p.reply_ms * (0.25 * r.normal()).exp();
            let fail_rate = if bad_hour == Some(h) { r.between(0.2, 0.6) } else { p.fail_rate };
            let fails = binomial(count, fail_rate, &mut r);
            // Half the failures are the 5-second timeout, the others fail fast.
            let timeouts = binomial(fails, 0.5, &mut r);
            let timeout_ms = 5000 + pick(&mut r, 60) as u64;
            let quick = (count - timeouts) as f64 * avg - (fails - timeouts) as f64 * avg * 0.5;
            let total_ms = (quick.round() as u64).max(count - timeouts) + timeouts * timeout_ms;
            let average = total_ms.div_ceil(count);
            let max_ms = if timeouts > 0 {
                timeout_ms
            } else if count == 1 {
                total_ms
            } else {
                let slowest = avg * (1.0 + 0.8 * (count as f64).ln() * (0.5 * r.normal()).exp());
                let hi = total_ms.min(5000).max(average);
                (slowest.round() as u64).clamp(average, hi)
            };
            *calls = Calls { count, fails, total_ms, max_ms };
        }
        hours
    }

    fn interface(&self, out: &mut Out, hourly: bool) {
        let hours = self.calls(out.day);
        let mut put = |hour: Option<usize>, c: &Calls| {
            let mut row = out.row();
            if let Some(h) = hour {
                row.int("ref_hour", h as u64 * 100);
            }
            row.int("callback_count", c.count)
                .int("fail_count", c.fails)
                .int("total_time_cost", c.total_ms)
                .int("max_time_cost", c.max_ms);
            out.push(row);
        };
        if hourly {
            hours.iter().enumerate().filter(|(_, c)| c.count > 0).for_each(|(h, c)| put(Some(h), c));
        } else {
            let day = hours.iter().fold(Calls::default(), |d, c| Calls {
                count: d.count + c.count,
                fails: d.fails + c.fails,
                total_ms: d.total_ms + c.total_ms,
                max_ms: d.max_ms.max(c.max_ms),
            });
            put(None, &day);
        }
    }
}

// ---- helpers ----

fn ymd(d: NaiveDate) -> u32 {
    d.year() as u32 * 10_000 + d.month() * 100 + d.day()
}

fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The last day offset an article sent on `day` has figures for: `days` days at most, and
/// none after `latest` (but always its own day).
fn days_tracked(day: NaiveDate, latest: NaiveDate, days: u32) -> u32 {
    (latest - day).num_days().clamp(0, i64::from(days) - 1) as u32
}

fn pick(r: &mut Rng, n: usize) -> usize {
    (r.next_u64() % n as u64) as usize
}

/// A binomial draw: exact for small `n`, Poisson or normal beyond, where nobody can tell.
fn binomial(n: u64, p: f64, r: &mut Rng) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if n <= 32 {
        return (0..n).filter(|_| r.chance(p)).count() as u64;
    }
    let mean = n as f64 * p;
    if mean < 12.0 {
        return r.poisson(mean).min(n);
    }
    if n as f64 - mean < 12.0 {
        return n - r.poisson(n as f64 - mean).min(n);
    }
    (mean + (mean * (1.0 - p)).sqrt() * r.normal()).round().clamp(0.0, n as f64) as u64
}

/// Splits `total` over `out` along `weights` (a multinomial draw), so that the parts add up
/// to `total` exactly. Without any positive weight, everything goes to the first part.
fn split(total: u64, weights: &[f64], r: &mut Rng, out: &mut [u64]) {
    out.fill(0);
    let Some(last) = weights.iter().rposition(|&w| w > 0.0) else {
        if let Some(first) = out.first_mut() {
            *first = total;
        }
        return;
    };
    let mut rest: f64 = weights.iter().filter(|&&w| w > 0.0).sum();
    let mut left = total;
    for (i, &w) in weights.iter().enumerate().take(last + 1) {
        if left == 0 {
            break;
        }
        if w <= 0.0 {
            continue;
        }
        let x = if i == last { left } else { binomial(left, (w / rest).min(1.0), r) };
        out[i] = x;
        left -= x;
        rest -= w;
    }
}

/// A table of scenes × hours whose hours add up to `hour_totals` and scenes to `scene_totals`
/// (which have the same sum): each hour is drawn from what is left of each scene.
fn allocate(hour_totals: &[u64; 24], scene_totals: &[u64; 4], r: &mut Rng) -> [[u64; 24]; 4] {
    debug_assert_eq!(hour_totals.iter().sum::<u64>(), scene_totals.iter().sum::<u64>());
    let mut left = *scene_totals;
    let mut out = [[0; 24]; 4];
    for (i, &n) in hour_totals.iter().enumerate() {
        let (mut need, mut rest) = (n, left.iter().sum::<u64>());
        for s in 0..4 {
            if need == 0 {
                break;
            }
            // Take between what the other scenes cannot hold and what this one has left.
            let others = rest - left[s];
            let x =
                binomial(need, left[s] as f64 / rest as f64, r).clamp(need.saturating_sub(others), need.min(left[s]));
            out[s][i] = x;
            left[s] -= x;
            need -= x;
            rest = others;
        }
    }
    out
}

/// The users of each hour, given the hours' counts and the day's `users`: an hour with counts
/// has at least one user, at most one per count and never more than the day; and the hours'
/// users add up to at least the day's (someone back in another hour counts again there).
fn hour_users(counts: &[u64; 24], users: u64) -> [u64; 24] {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return [0; 24];
    }
    let ratio = (users as f64 / total as f64 * 1.15).min(1.0);
    counts.map(|n| if n == 0 { 0 } else { ((n as f64 * ratio).ceil() as u64).clamp(1, n).min(users.max(1)) })
}

/// Reading of today's articles by hour: nothing before the send, a burst, then the day's curve.
fn fresh_curve(send_hour: Option<u32>) -> [f64; 24] {
    let Some(send) = send_hour else { return READ_DIURNAL };
    std::array::from_fn(|h| {
        let h = h as u32;
        if h < send { 0.0 } else { (-f64::from(h - send) / 2.0).exp() + 0.15 * READ_DIURNAL[h as usize] / 2.6 }
    })
}

/// A float as the service computes it: single precision, printed with twelve decimals.
fn single(v: f64) -> f64 {
    ((v as f32) as f64 * 1e12).round() / 1e12
}

fn json_f64(v: f64) -> String {
    serde_json::Number::from_f64(v).map_or_else(|| "null".to_string(), |n| n.to_string())
}

/// `read_user_source`: "全部" first, then each source.
fn sources_json(all: u64, sources: &[u64; N_SOURCES]) -> SimValue {
    let mut s = String::with_capacity(400);
    let _ = write!(s, r#"[{{"user_count":{all},"scene_desc":"{SCENE_ALL}"}}"#);
    for (n, desc) in sources.iter().zip(SCENE_DESC) {
        let _ = write!(s, r#",{{"user_count":{n},"scene_desc":"{desc}"}}"#);
    }
    s.push(']');
    SimValue::Raw(s)
}

/// `read_jump_position`: positions 1 to 5 and their rates, given in millionths.
fn jumps_json(micros: &[u64; 5]) -> SimValue {
    let mut s = String::with_capacity(160);
    s.push('[');
    for (i, &m) in micros.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(s, r#"{sep}{{"position":{},"rate":{}}}"#, i + 1, json_f64(m as f64 / 1e6));
    }
    s.push(']');
    SimValue::Raw(s)
}

/// Standard base64, with padding (an account's `__biz` is its uin's digits in base64).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use serde_json::Value;

    use super::*;
    use crate::accounts::demo_appid;
    use crate::calendar::{DaySpan, parse_day};
    use crate::testing::d;
    use wxcube_registry::{self as registry, Family, Kind};

    fn table(name: &str) -> &'static Table {
        registry::find(name).unwrap()
    }

    fn span(first: &str, last: &str) -> DaySpan {
        DaySpan::new(d(first), d(last)).unwrap()
    }

    /// The non-message tables.
    fn tables() -> impl Iterator<Item = &'static Table> {
        registry::tables().iter().filter(|t| t.family != Family::Message).map(|t| &**t)
    }

    /// Accounts of very different sizes: the demo ones and some arbitrary appids.
    fn appids() -> Vec<String> {
        let mut ids: Vec<String> = (1..=6).map(demo_appid).collect();
        ids.extend(["wx1234567890abcdef", "wxffffffffffffffff", "x"].map(String::from));
        ids
    }

    const LATEST: &str = "2026-01-15";

    fn rows_of(t: &Table, appid: &str, day: NaiveDate) -> Vec<SimRow> {
        rows(t, appid, day, d(LATEST))
    }

    fn int(t: &Table, row: &SimRow, path: &str) -> i64 {
        row.get(t, path).unwrap_or_else(|| panic!("{t}: {path} in {row:?}"))
    }

    fn text<'r>(t: &Table, row: &'r SimRow, path: &str) -> &'r str {
        match &row.fields[t.field_index(path).unwrap()] {
            SimValue::Text(s) => s,
            other => panic!("{t}: {path} is {other:?}"),
        }
    }

    fn json(t: &Table, row: &SimRow, path: &str) -> Value {
        match &row.fields[t.field_index(path).unwrap()] {
            SimValue::Raw(s) => serde_json::from_str(s).unwrap(),
            other => panic!("{t}: {path} is {other:?}"),
        }
    }

    fn float(t: &Table, row: &SimRow, path: &str) -> f64 {
        json(t, row, path).as_f64().unwrap()
    }

    /// Days of several eras, for the tables whose floor allows them.
    fn sample_days(t: &Table) -> Vec<NaiveDate> {
        ["2014-12-01", "2015-06-10", "2017-05-19", "2020-02-28", "2023-05-31", "2023-06-01", "2025-11-01", "2025-11-20"]
            .into_iter()
            .flat_map(|s| (0..4).map(move |i| d(s) + Days::new(i)))
            .filter(|&day| day >= t.floor)
            .collect()
    }

    #[test]
    fn same_inputs_give_the_same_rows_and_accounts_differ() {
        let november = span("2025-11-01", "2025-11-30");
        for t in tables() {
            let all = |appid: &str| -> Vec<SimRow> { november.each().flat_map(|day| rows_of(t, appid, day)).collect() };
            let first = all("wxdemo000000000001");
            assert_eq!(first, all("wxdemo000000000001"), "{t}");
            assert_ne!(first, all("wxdemo000000000002"), "{t}: accounts differ");
        }
    }

    #[test]
    fn every_table_has_rows_in_november_2025() {
        let november = span("2025-11-01", "2025-11-30");
        for t in tables() {
            let n: usize = november.each().map(|day| rows_of(t, "wxdemo000000000001", day).len()).sum();
            assert!(n > 0, "{t}: no rows in November 2025");
        }
    }

    #[test]
    fn rows_follow_the_registry() {
        for t in tables() {
            for appid in appids() {
                for day in sample_days(t) {
                    for row in rows_of(t, &appid, day) {
                        assert_eq!(row.ref_date, day, "{t}");
                        assert_eq!(row.fields.len(), t.api_fields.len(), "{t}");
                        for (f, v) in t.api_fields.iter().zip(&row.fields) {
                            let ok = match (&f.kind, v) {
                                (_, SimValue::Absent) => f.optional,
                                (Kind::Int, SimValue::Int(_)) => true,
                                (Kind::Text, SimValue::Text(_)) => true,
                                (Kind::Date, SimValue::Text(s)) => parse_day(s).is_ok(),
                                (Kind::Float, SimValue::Raw(s)) => serde_json::from_str::<f64>(s).is_ok(),
                                (Kind::Structs(fields), SimValue::Raw(s)) => {
                                    let v: Value = serde_json::from_str(s).unwrap();
                                    v.as_array().unwrap().iter().all(|e| {
                                        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
                                        keys.len() == fields.len() && fields.iter().all(|(k, _)| e.get(k).is_some())
                                    })
                                }
                                _ => false,
                            };
                            assert!(ok, "{t} {appid} {day}: {} = {v:?}", f.path);
                        }
                        for c in t.columns.iter().filter(|c| c.measure) {
                            if let registry::Source::Field { field, .. } = c.source {
                                assert!(row.fields[field].int().is_none_or(|v| v >= 0), "{t}: {} < 0", c.name);
                            }
                        }
                    }
                }
            }
        }
        assert!(rows_of(table("upstream_msg"), "wxdemo000000000001", d("2025-11-03")).is_empty());
    }

    #[test]
    fn codes_are_labelled_or_deliberately_unknown() {
        let known_unknowns: BTreeMap<&str, Vec<i64>> =
            [("user_summary", vec![176]), ("user_share", vec![5]), ("user_share_hour", vec![5])].into();
        let mut seen: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
        for (name, field) in [
            ("user_summary", "user_source"),
            ("user_read", "user_source"),
            ("user_read_hour", "user_source"),
            ("user_share", "share_scene"),
            ("user_share_hour", "share_scene"),
        ] {
            let t = table(name);
            let i = t.field_index(field).unwrap();
            for appid in appids() {
                for day in span("2023-05-20", "2023-06-10").each().chain(span("2025-11-01", "2025-11-10").each()) {
                    for row in rows_of(t, &appid, day) {
                        let code = int(t, &row, field);
                        let unknown = known_unknowns.get(name).is_some_and(|c| c.contains(&code));
                        assert!(t.label(i, code).is_some() || unknown, "{name}: code {code}");
                        if name == "user_summary" && day >= d("2023-06-01") {
                            assert_ne!(code, 51, "follows after payment count in 0 from June 2023");
                        }
                        seen.entry(name).or_default().insert(code);
                    }
                }
            }
        }
        assert!(seen["user_share"].contains(&5), "the undocumented scene 5 shows up now and then");
        assert!(seen["user_read"].contains(&ALL_SOURCES));
        assert!(seen["user_summary"].len() >= 8, "{:?}", seen["user_summary"]);
    }

    #[test]
    fn user_summary_adds_up_to_the_cumulate_change() {
        let (s, c) = (table("user_summary"), table("user_cumulate"));
        for appid in appids() {
            for day in span("2024-12-01", "2025-01-31").each().chain(span("2015-03-01", "2015-03-15").each()) {
                let total = |day| int(c, &rows_of(c, &appid, day)[0], "cumulate_user");
                let cum = rows_of(c, &appid, day);
                assert_eq!(cum.len(), 1);
                assert_eq!(int(c, &cum[0], "user_source"), 0);
                let summary = rows_of(s, &appid, day);
                let net: i64 = summary.iter().map(|r| int(s, r, "new_user") - int(s, r, "cancel_user")).sum();
                assert_eq!(net, total(day) - total(day - Days::new(1)), "{appid} {day}");
                let codes: Vec<i64> = summary.iter().map(|r| int(s, r, "user_source")).collect();
                assert!(codes.windows(2).all(|w| w[0] < w[1]), "sorted, one row per channel: {codes:?}");
                if summary.iter().all(|r| int(s, r, "new_user") + int(s, r, "cancel_user") == 0) {
                    assert_eq!(codes, [0], "a quiet day is one zero row of channel 0");
                }
            }
        }
    }

    /// msgid → rows, in order.
    fn by_article<'r>(t: &Table, rows: &'r [SimRow]) -> BTreeMap<String, Vec<&'r SimRow>> {
        let mut m: BTreeMap<String, Vec<&SimRow>> = BTreeMap::new();
        for r in rows {
            m.entry(text(t, r, "msgid").to_string()).or_default().push(r);
        }
        m
    }

    #[test]
    fn article_totals_are_running_totals_of_the_summaries() {
        let (total_t, summary_t) = (table("article_total"), table("article_summary"));
        let latest = d("2025-11-20");
        let mut articles = 0;
        for appid in appids() {
            for day in span("2025-11-01", "2025-11-20").each() {
                let rows = rows(total_t, &appid, day, latest);
                // One article's rows are consecutive.
                let ids: Vec<&str> = rows.iter().map(|r| text(total_t, r, "msgid")).collect();
                let mut runs = ids.clone();
                runs.dedup();
                assert_eq!(runs.len(), by_article(total_t, &rows).len(), "{appid} {day}");
                for (msgid, details) in by_article(total_t, &rows) {
                    articles += 1;
                    let end = (day + Days::new(6)).min(latest);
                    let dates: Vec<NaiveDate> =
                        details.iter().map(|r| d(text(total_t, r, "details.stat_date"))).collect();
                    assert_eq!(dates, DaySpan::new(day, end).unwrap().each().collect::<Vec<_>>(), "{msgid}");
                    let (mid, index) = msgid.split_once('_').unwrap();
                    assert!(mid.parse::<i64>().unwrap() > 1 << 31, "{msgid}");
                    assert!((1..=4).contains(&index.parse::<i64>().unwrap()));
                    let first = details[0];
                    for r in &details {
                        assert_eq!(r.fields[..4], first.fields[..4], "the article's own fields repeat");
                        assert_eq!(int(total_t, r, "user_source"), 0);
                        assert_eq!(int(total_t, r, "details.target_user"), int(total_t, first, "details.target_user"));
                    }
                    let measures: Vec<&str> = total_t
                        .api_fields
                        .iter()
                        .filter(|f| f.path.starts_with("details.") && f.kind == Kind::Int)
                        .map(|f| f.path.as_str())
                        .collect();
                    for w in details.windows(2) {
                        for m in &measures {
                            assert!(int(total_t, w[0], m) <= int(total_t, w[1], m), "{msgid} {m}");
                        }
                    }
                    for r in &details {
                        let from = |kind: &str| -> i64 {
                            ["session", "hist_msg", "feed", "friends", "other", "kanyikan", "souyisou"]
                                .iter()
                                .map(|s| int(total_t, r, &format!("details.int_page_from_{s}_read_{kind}")))
                                .sum()
                        };
                        assert!(from("user") <= int(total_t, r, "details.int_page_read_user"));
                        assert!(from("count") <= int(total_t, r, "details.int_page_read_count"));
                        let moments = |kind: &str| -> i64 {
                            ["session", "feed", "other"]
                                .iter()
                                .map(|s| int(total_t, r, &format!("details.feed_share_from_{s}_{kind}")))
                                .sum()
                        };
                        assert!(moments("user") <= int(total_t, r, "details.share_user"));
                        assert!(moments("cnt") <= int(total_t, r, "details.share_count"));
                        assert!(text(total_t, r, "url").starts_with("http://mp.weixin.qq.com/s?__biz="));
                    }
                    // Each day's increment is what getarticlesummary says of that day.
                    for (k, r) in details.iter().enumerate() {
                        let stat = day + Days::new(k as u64);
                        let summary = rows_of(summary_t, &appid, stat);
                        let listed = summary.iter().find(|s| text(summary_t, s, "msgid") == msgid);
                        let before = |f: &str| if k == 0 { 0 } else { int(total_t, details[k - 1], f) };
                        let inc = |f: &str| int(total_t, r, f) - before(f);
                        let score = inc("details.int_page_read_user")
                            + inc("details.ori_page_read_user")
                            + inc("details.share_user")
                            + inc("details.share_count")
                            + inc("details.add_to_fav_count");
                        match listed {
                            Some(s) => {
                                assert_eq!(int(summary_t, s, "int_page_read_user"), inc("details.int_page_read_user"));
                                assert_eq!(int(summary_t, s, "share_count"), inc("details.share_count"));
                                assert_eq!(text(summary_t, s, "title"), text(total_t, r, "title"));
                            }
                            None => assert!(score < 3, "{msgid} {stat}: missing from the summary"),
                        }
                    }
                }
            }
        }
        assert!(articles > 20, "{articles}");
    }

    #[test]
    fn article_total_detail_follows_an_article_for_thirty_days() {
        let t = table("article_total_detail");
        let latest = d("2026-01-10");
        let mut publish_types = BTreeSet::new();
        for appid in appids() {
            for day in span("2025-11-01", "2025-12-31").each() {
                let rows = rows(t, &appid, day, latest);
                for (msgid, details) in by_article(t, &rows) {
                    publish_types.insert(int(t, details[0], "publish_type"));
                    let end = (day + Days::new(29)).min(latest);
                    assert_eq!(d(text(t, details[0], "detail_list.stat_date")), day);
                    assert_eq!(d(text(t, details.last().unwrap(), "detail_list.stat_date")), end, "{msgid}");
                    assert_eq!(details.len() as i64, (end - day).num_days() + 1);
                    for w in details.windows(2) {
                        for m in ["read_user", "share_user", "like_user", "praise_money", "collection_user"] {
                            let path = format!("detail_list.{m}");
                            assert!(int(t, w[0], &path) <= int(t, w[1], &path), "{msgid} {m}");
                        }
                    }
                    for r in &details {
                        let read_user = int(t, r, "detail_list.read_user");
                        let sources = json(t, r, "detail_list.read_user_source");
                        let sources = sources.as_array().unwrap();
                        assert_eq!(sources.len(), 8);
                        assert_eq!(sources[0]["scene_desc"], "全部");
                        assert_eq!(sources[0]["user_count"], read_user);
                        assert!(sources.iter().all(|s| s["user_count"].as_i64().unwrap() <= read_user));
                        for f in ["read_delivery_rate", "read_finish_rate"] {
                            let v = float(t, r, &format!("detail_list.{f}"));
                            assert!((0.0..=1.0).contains(&v), "{f} {v}");
                        }
                        assert!(float(t, r, "detail_list.read_avg_activetime") >= 0.0);
                        let jumps = json(t, r, "detail_list.read_jump_position");
                        let jumps = jumps.as_array().unwrap();
                        let positions: Vec<i64> = jumps.iter().map(|j| j["position"].as_i64().unwrap()).collect();
                        assert_eq!(positions, [1, 2, 3, 4, 5]);
                        let sum: f64 = jumps.iter().map(|j| j["rate"].as_f64().unwrap()).sum();
                        if read_user > 0 {
                            assert!((sum - 1.0).abs() < 1e-9, "{sum}");
                        }
                        assert!(text(t, r, "content_url").starts_with("https://mp.weixin.qq.com/s?__biz="));
                        assert!(!text(t, r, "title").is_empty());
                    }
                }
            }
        }
        assert!(publish_types.contains(&0) && publish_types.contains(&1), "{publish_types:?}");
    }

    #[test]
    fn daily_article_tables_agree_with_the_account_row() {
        let (read_t, share_t, biz_t, detail_t) =
            (table("article_read"), table("article_share"), table("biz_summary"), table("article_total_detail"));
        for appid in appids() {
            for day in span("2025-11-01", "2025-11-30").each() {
                let reads = rows_of(read_t, &appid, day);
                let biz = rows_of(biz_t, &appid, day);
                assert_eq!(biz.len(), 1, "one account row per day");
                let biz = &biz[0];
                let read_sum: i64 = reads.iter().map(|r| int(read_t, r, "detail.read_user")).sum();
                let read_max = reads.iter().map(|r| int(read_t, r, "detail.read_user")).max().unwrap_or(0);
                let biz_read = int(biz_t, biz, "detail.read_user");
                assert!(read_max <= biz_read && biz_read <= read_sum, "{appid} {day}");
                let sources = json(biz_t, biz, "detail.read_user_source");
                assert_eq!(sources[0]["user_count"], biz_read);
                for r in &reads {
                    assert!(int(read_t, r, "detail.read_user") > 0);
                    let s = json(read_t, r, "detail.read_user_source");
                    let descs: Vec<&str> =
                        s.as_array().unwrap().iter().map(|e| e["scene_desc"].as_str().unwrap()).collect();
                    assert_eq!(
                        descs,
                        ["全部", "公众号消息", "聊天会话", "朋友圈", "公众号主页", "其他", "推荐", "搜一搜"]
                    );
                }
                let shares = rows_of(share_t, &appid, day);
                assert!(shares.iter().all(|r| int(share_t, r, "detail.share_user") >= 1));
                let share_sum: i64 = shares.iter().map(|r| int(share_t, r, "detail.share_user")).sum();
                assert!(int(biz_t, biz, "detail.share_user") <= share_sum);
                let published = by_article(detail_t, &rows_of(detail_t, &appid, day)).len() as i64;
                assert_eq!(int(biz_t, biz, "detail.send_page_count"), published, "{appid} {day}");
            }
        }
    }

    #[test]
    fn user_read_channels_and_hours_agree() {
        let (day_t, hour_t) = (table("user_read"), table("user_read_hour"));
        let extras = ["ori_page_read_user", "ori_page_read_count", "add_to_fav_user", "add_to_fav_count"];
        for appid in appids() {
            for day in span("2025-10-25", "2025-11-10").each().chain(span("2016-03-01", "2016-03-05").each()) {
                let rows = rows_of(day_t, &appid, day);
                let hours = rows_of(hour_t, &appid, day);
                assert_eq!(rows.is_empty(), hours.is_empty());
                if rows.is_empty() {
                    continue;
                }
                let all: Vec<&SimRow> = rows.iter().filter(|r| int(day_t, r, "user_source") == ALL_SOURCES).collect();
                assert_eq!(all.len(), 1);
                let channels: Vec<&SimRow> =
                    rows.iter().filter(|r| int(day_t, r, "user_source") != ALL_SOURCES).collect();
                for r in &rows {
                    let is_all = int(day_t, r, "user_source") == ALL_SOURCES;
                    for f in extras {
                        assert_eq!(r.get(day_t, f).is_some(), is_all, "{f} only on the 99999999 row");
                    }
                    assert!(int(day_t, r, "int_page_read_count") >= int(day_t, r, "int_page_read_user"));
                    assert!(int(day_t, r, "share_count") >= int(day_t, r, "share_user"));
                }
                for (users, count) in [("int_page_read_user", "int_page_read_count"), ("share_user", "share_count")] {
                    let max = channels.iter().map(|r| int(day_t, r, users)).max().unwrap();
                    let sum: i64 = channels.iter().map(|r| int(day_t, r, users)).sum();
                    let total = int(day_t, all[0], users);
                    assert!(max <= total && total <= sum, "{appid} {day} {users}: {max} {total} {sum}");
                    let counts: i64 = channels.iter().map(|r| int(day_t, r, count)).sum();
                    assert_eq!(int(day_t, all[0], count), counts);
                }
                // The day of each channel is the sum of its hours.
                for r in &rows {
                    let source = int(day_t, r, "user_source");
                    let of: Vec<&SimRow> = hours.iter().filter(|h| int(hour_t, h, "user_source") == source).collect();
                    for (users, count) in [("int_page_read_user", "int_page_read_count"), ("share_user", "share_count")]
                        .into_iter()
                        .chain((source == ALL_SOURCES).then_some(("ori_page_read_user", "ori_page_read_count")))
                        .chain((source == ALL_SOURCES).then_some(("add_to_fav_user", "add_to_fav_count")))
                    {
                        let sum = |f| of.iter().map(|h| int(hour_t, h, f)).sum::<i64>();
                        let max = of.iter().map(|h| int(hour_t, h, users)).max().unwrap_or(0);
                        assert_eq!(sum(count), int(day_t, r, count), "{appid} {day} {source} {count}");
                        assert!(max <= int(day_t, r, users) && int(day_t, r, users) <= sum(users), "{users}");
                    }
                }
                for h in &hours {
                    let hour = int(hour_t, h, "ref_hour");
                    assert!(hour % 100 == 0 && (0..=2300).contains(&hour));
                    assert!(int(hour_t, h, "int_page_read_count") >= 1);
                    let is_all = int(hour_t, h, "user_source") == ALL_SOURCES;
                    assert!(extras.iter().all(|f| h.get(hour_t, f).is_some() == is_all));
                }
            }
        }
    }

    #[test]
    fn user_share_days_are_the_sum_of_their_hours() {
        let (day_t, hour_t, read_t, read_hour_t) =
            (table("user_share"), table("user_share_hour"), table("user_read"), table("user_read_hour"));
        for appid in appids() {
            for day in span("2025-11-01", "2025-11-15").each() {
                let rows = rows_of(day_t, &appid, day);
                let hours = rows_of(hour_t, &appid, day);
                let reads = rows_of(read_t, &appid, day);
                let shares_read = reads
                    .iter()
                    .find(|r| int(read_t, r, "user_source") == ALL_SOURCES)
                    .map_or(0, |r| int(read_t, r, "share_count"));
                assert_eq!(rows.iter().map(|r| int(day_t, r, "share_count")).sum::<i64>(), shares_read);
                // Shares happen in the hours of reading: each hour's scenes add up to its shares
                // in getuserreadhour.
                for r in rows_of(read_hour_t, &appid, day) {
                    if int(read_hour_t, &r, "user_source") == ALL_SOURCES {
                        let hour = int(read_hour_t, &r, "ref_hour");
                        let scenes: i64 = hours
                            .iter()
                            .filter(|h| int(hour_t, h, "ref_hour") == hour)
                            .map(|h| int(hour_t, h, "share_count"))
                            .sum();
                        assert_eq!(scenes, int(read_hour_t, &r, "share_count"), "{appid} {day} {hour}");
                    }
                }
                for r in &rows {
                    let scene = int(day_t, r, "share_scene");
                    let (count, users) = (int(day_t, r, "share_count"), int(day_t, r, "share_user"));
                    assert!(count >= users && users >= 1);
                    let of: Vec<&SimRow> = hours.iter().filter(|h| int(hour_t, h, "share_scene") == scene).collect();
                    assert_eq!(of.iter().map(|h| int(hour_t, h, "share_count")).sum::<i64>(), count);
                    let hour_users: Vec<i64> = of.iter().map(|h| int(hour_t, h, "share_user")).collect();
                    assert!(*hour_users.iter().max().unwrap() <= users && users <= hour_users.iter().sum());
                    assert!(of.iter().all(|h| int(hour_t, h, "share_count") >= int(hour_t, h, "share_user")));
                }
            }
        }
    }

    #[test]
    fn interface_days_are_the_sum_of_their_hours() {
        let (day_t, hour_t) = (table("interface_summary"), table("interface_summary_hour"));
        let mut quiet_hours = 0;
        for appid in appids() {
            for day in span("2025-11-01", "2025-11-30").each().chain(span("2015-01-01", "2015-01-10").each()) {
                let rows = rows_of(day_t, &appid, day);
                assert_eq!(rows.len(), 1, "one row a day, zeros when quiet");
                let hours = rows_of(hour_t, &appid, day);
                quiet_hours += 24 - hours.len();
                for f in ["callback_count", "fail_count", "total_time_cost"] {
                    assert_eq!(int(day_t, &rows[0], f), hours.iter().map(|h| int(hour_t, h, f)).sum::<i64>(), "{f}");
                }
                let max = hours.iter().map(|h| int(hour_t, h, "max_time_cost")).max().unwrap_or(0);
                assert_eq!(int(day_t, &rows[0], "max_time_cost"), max);
                for h in &hours {
                    let (calls, total, max) = (
                        int(hour_t, h, "callback_count"),
                        int(hour_t, h, "total_time_cost"),
                        int(hour_t, h, "max_time_cost"),
                    );
                    assert!(calls >= 1 && int(hour_t, h, "fail_count") <= calls);
                    assert!(max * calls >= total && max <= total && max <= 5100, "{calls} {total} {max}");
                }
            }
        }
        assert!(quiet_hours > 0);
    }

    #[test]
    fn msgids_are_text_above_two_to_the_31() {
        for name in ["article_summary", "article_read", "article_share"] {
            let t = table(name);
            let mut n = 0;
            for day in span("2025-11-01", "2025-11-14").each() {
                for r in rows_of(t, "wxdemo000000000001", day) {
                    let (mid, _) = text(t, &r, "msgid").split_once('_').unwrap();
                    assert!(mid.parse::<i64>().unwrap() > 1 << 31);
                    n += 1;
                }
            }
            assert!(n > 0, "{name}");
        }
    }

    #[test]
    fn accounts_are_mostly_small() {
        let c = table("user_cumulate");
        let sizes: Vec<i64> =
            (1..=40).map(|i| int(c, &rows_of(c, &demo_appid(i), d("2025-11-01"))[0], "cumulate_user")).collect();
        let mut sorted = sizes.clone();
        sorted.sort();
        assert!(sorted[20] < 20_000 && sorted[39] > 10 * sorted[20], "{sorted:?}");
    }

    #[test]
    fn base64_matches_a_real_biz() {
        assert_eq!(base64(b"3096609847"), "MzA5NjYwOTg0Nw==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(single(2.0 / 3.0), 0.666666686535);
        assert_eq!(json_f64(single(0.1)), "0.10000000149");
    }

    #[test]
    fn splits_add_up() {
        let mut r = Rng::new(9);
        for total in [0, 1, 5, 31, 33, 100, 10_000, 1_000_000] {
            let mut out = [0; 5];
            split(total, &[0.0, 1.0, 0.0, 3.0, 0.5], &mut r, &mut out);
            assert_eq!(out.iter().sum::<u64>(), total);
            assert_eq!(out[0] + out[2], 0);
            split(total, &[0.0; 5], &mut r, &mut out);
            assert_eq!(out[0], total);
        }
    }
}
