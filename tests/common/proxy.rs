//! A TCP proxy that can be broken on demand: stands between wxcube and a real server to make
//! the server "fail mid-run" — open connections are cut and new ones refused until healed. It
//! also counts the connections open at once, which is how many requests a client had in flight.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub url: String,
    broken: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    open: Arc<Connections>,
}

#[derive(Default)]
struct Connections {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (broken, _) = watch::channel(false);
        let state = broken.clone();
        let open = Arc::new(Connections::default());
        let counts = Arc::clone(&open);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                let mut cut = state.subscribe();
                if *cut.borrow() {
                    continue; // dropped: the client sees the connection close
                }
                let counts = Arc::clone(&counts);
                tokio::spawn(async move {
                    let now = counts.now.fetch_add(1, Ordering::SeqCst) + 1;
                    counts.peak.fetch_max(now, Ordering::SeqCst);
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.wait_for(|b| *b) => {}
                        }
                    }
                    counts.now.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Proxy { url, broken, task, open }
    }

    /// The most connections that were open through the proxy at once.
    pub fn peak_connections(&self) -> usize {
        self.open.peak.load(Ordering::SeqCst)
    }

    pub fn set_broken(&self, broken: bool) {
        self.broken.send_replace(broken);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
