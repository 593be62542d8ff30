//! Prints the throughput of the mux over an in-memory pipe as a table:
//! N streams opened by the WN each send their share of a fixed total to the
//! PP, which reads and discards it. Run via scripts/bench-mux.sh.

use std::time::Instant;

use pp_tunnel::{MuxEvent, MuxEvents, Phase, Side, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOTAL: usize = 256 * 1024 * 1024;

async fn drain_incoming(mut events: MuxEvents) {
    while let Some(event) = events.recv().await {
        if let MuxEvent::Incoming(mut incoming) = event {
            tokio::spawn(async move {
                let mut sink = tokio::io::sink();
                tokio::io::copy(&mut incoming.stream, &mut sink)
                    .await
                    .unwrap();
                incoming.stream.shutdown().await.unwrap();
            });
        }
    }
}

async fn measure(streams: usize, pipe_buffer: usize) -> f64 {
    let (pp_io, wn_io) = tokio::io::duplex(pipe_buffer);
    let (_pp, pp_events, pp_driver) = start(pp_io, Side::Pp(Phase::Kubernetes));
    let (wn, _wn_events, wn_driver) = start(wn_io, Side::Wn);
    tokio::spawn(pp_driver.run());
    tokio::spawn(wn_driver.run());
    tokio::spawn(drain_incoming(pp_events));
    let share = TOTAL / streams;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let wn = wn.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = wn.open("BENCH").await.unwrap();
            let chunk = vec![0x5a; 64 * 1024];
            for _ in 0..share / chunk.len() {
                stream.write_all(&chunk).await.unwrap();
            }
            stream.shutdown().await.unwrap();
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    TOTAL as f64 / started.elapsed().as_secs_f64() / 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "| streams | pipe buffer | MB/s (WN -> PP, {} MiB total) |",
        TOTAL >> 20
    );
    println!("|--------:|------------:|------:|");
    for streams in [1, 4, 16, 64] {
        for pipe_buffer in [16 * 1024, 256 * 1024] {
            let rate = measure(streams, pipe_buffer).await;
            println!("| {streams} | {} KiB | {rate:.0} |", pipe_buffer / 1024);
        }
    }
}
