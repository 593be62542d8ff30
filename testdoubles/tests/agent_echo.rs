//! agent-echo seen from outside: echo with half-close over a unix socket
//! (many connections at once) and over TCP, and a stale socket replaced.

mod common;

use common::RunningDouble;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

fn socket_path(test: &str) -> PathBuf {
    std::env::temp_dir()
        .join(format!("agent-echo-{test}-{}", std::process::id()))
        .join("agent.sock")
}

fn round_trip<S: Read + Write>(
    mut stream: S,
    shutdown: impl FnOnce(&S),
    payload: &[u8],
) -> Vec<u8> {
    stream.write_all(payload).unwrap();
    shutdown(&stream);
    let mut back = Vec::new();
    stream.read_to_end(&mut back).unwrap();
    back
}

#[test]
fn many_unix_connections_echo_and_half_close() {
    let path = socket_path("unix");
    let echo = RunningDouble::start(
        env!("CARGO_BIN_EXE_agent-echo"),
        &["--unix", path.to_str().unwrap()],
    );
    let workers: Vec<_> = (0..16u8)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let payload: Vec<u8> = (0..100_000u32).map(|n| (n as u8) ^ i).collect();
                let back = round_trip(
                    UnixStream::connect(&path).unwrap(),
                    |s| s.shutdown(Shutdown::Write).unwrap(),
                    &payload,
                );
                assert_eq!(back, payload);
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    echo.wait_for_log("closed after 100000 bytes echoed");
    drop(echo);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_stale_socket_is_replaced_on_start() {
    let path = socket_path("stale");
    drop(RunningDouble::start(
        env!("CARGO_BIN_EXE_agent-echo"),
        &["--unix", path.to_str().unwrap()],
    ));
    assert!(path.exists(), "the killed double leaves its socket behind");
    let _echo = RunningDouble::start(
        env!("CARGO_BIN_EXE_agent-echo"),
        &["--unix", path.to_str().unwrap()],
    );
    let back = round_trip(
        UnixStream::connect(&path).unwrap(),
        |s| s.shutdown(Shutdown::Write).unwrap(),
        b"ping",
    );
    assert_eq!(back, b"ping");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn tcp_connections_echo_and_half_close() {
    let echo = RunningDouble::start(env!("CARGO_BIN_EXE_agent-echo"), &["--tcp", "127.0.0.1:0"]);
    let address = echo.address.trim_start_matches("tcp:").to_string();
    let back = round_trip(
        TcpStream::connect(&address).unwrap(),
        |s| s.shutdown(Shutdown::Write).unwrap(),
        b"hello",
    );
    assert_eq!(back, b"hello");
}

#[test]
fn with_a_kata_agent_config_it_listens_on_the_server_addr() {
    let path = socket_path("config");
    let config = path.with_file_name("agent-config.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "server_addr = \"unix://{}\"\nguest_components_procs = \"none\"\n",
            path.display()
        ),
    )
    .unwrap();
    let _echo = RunningDouble::start(
        env!("CARGO_BIN_EXE_agent-echo"),
        &["--config", config.to_str().unwrap()],
    );
    let back = round_trip(
        UnixStream::connect(&path).unwrap(),
        |s| s.shutdown(Shutdown::Write).unwrap(),
        b"kata",
    );
    assert_eq!(back, b"kata");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}
