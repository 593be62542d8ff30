//! Fuzzes the SSH server before authentication: the input is what a client
//! sends (version line, key exchange, user authentication) into sunset's
//! server `Runner` (the patched copy the forwarder links), whose pre-auth
//! events are answered as the forwarder's `session.rs` answers them, with
//! every decision taken by the real phase machine (`pp_forwarder_core::phase`).
//!
//! The forwarder's own event loop is async and owns sockets and its
//! controller, so this target mirrors its mapping from sunset events to
//! phase-machine events instead of calling it; no sockets, no tokio.
//! Built by cargo-fuzz (`--cfg fuzzing`), sunset skips decryption and
//! signature checks, so inputs get past the key exchange to user
//! authentication. The input ends at `Authenticated`: what follows is
//! the mux targets' job. Must never panic or loop.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pp_forwarder_core::phase::{Action, AuthMethod, Event, PhaseMachine, Restored, Settings};
use pp_ssh_key::PublicKey;
use pp_tag::ConnectionPhase;
use sunset::event::{Event as SshEvent, ServEvent};
use sunset::{PubKey, Runner, SignKey};

/// The WN key of the init-data in half the runs (the other half accept
/// `none` authentication only, as with no key in init-data).
const WN_KEY_SEED: [u8; 32] = [0x57; 32];
const HOST_KEY_SEED: [u8; 32] = [0x48; 32];
const CONN: u64 = 1;

fn host_key() -> &'static SignKey {
    static KEY: OnceLock<SignKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SignKey::Ed25519(sunset::ed25519_dalek::SigningKey::from_bytes(
            &HOST_KEY_SEED,
        ))
    })
}

/// The phase machine's settings, with and without a WN key; built once
/// (deriving the two public keys per input cost more than a short input).
fn settings(with_wn_key: bool) -> &'static Settings {
    static BOTH: OnceLock<[Settings; 2]> = OnceLock::new();
    let [without, with] = BOTH.get_or_init(|| {
        let public = |seed: &[u8; 32]| {
            let key = sunset::ed25519_dalek::SigningKey::from_bytes(seed);
            PublicKey::from_bytes(key.verifying_key().to_bytes()).expect("an Ed25519 key")
        };
        let settings = |wn_key| Settings {
            boot_id: [1; 16],
            attestation_host_key: public(&HOST_KEY_SEED),
            init_data_wn_key: wn_key,
            attestation_deadline_ms: 120_000,
        };
        [settings(None), settings(Some(public(&WN_KEY_SEED)))]
    });
    if with_wn_key { with } else { without }
}

fn machine(with_wn_key: bool) -> PhaseMachine {
    let mut machine = PhaseMachine::new(settings(with_wn_key).clone());
    machine.step(Event::Restored {
        found: Restored::NoRecord,
        now_ms: 0,
    });
    machine
}

/// The phase machine's verdict on an offered method, as `offer_auth` asks it.
fn accepts(machine: &mut PhaseMachine, shown: Option<ConnectionPhase>, method: AuthMethod) -> bool {
    let actions = machine.step(Event::AuthOffered {
        conn: CONN,
        shown,
        method,
    });
    actions
        .iter()
        .any(|a| matches!(a, Action::AcceptAuth { .. }))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut input)) = data.split_first() else {
        return;
    };
    let mut machine = machine(selector & 1 == 1);
    let mut runner = Runner::new_server_owned();
    // The method last allowed: the Authenticated event that follows is about it.
    let mut allowed = None;
    // The phase whose host key the key exchange showed (`host_key_for`).
    let mut shown = None;
    // Every round consumes input or makes progress; the bound only stops a
    // loop that would be a bug in itself.
    for _ in 0..(4 * data.len() + 64) {
        if !input.is_empty() {
            match runner.input(input) {
                Ok(used) => input = &input[used..],
                Err(_) => return,
            }
        }
        // The event borrows the runner: answer it within this block.
        let answered = {
            let Ok(event) = runner.progress() else {
                return;
            };
            match event {
                SshEvent::Serv(ServEvent::Hostkeys(h)) => {
                    shown = machine.state().connection_phase();
                    h.hostkeys(&[host_key()])
                }
                SshEvent::Serv(ServEvent::FirstAuth(mut a)) => {
                    if accepts(&mut machine, shown, AuthMethod::None) {
                        allowed = Some(AuthMethod::None);
                        a.allow()
                    } else {
                        a.set_auth_methods(false, true)
                    }
                }
                SshEvent::Serv(ServEvent::PubkeyAuth(a)) => {
                    let offered = match a.pubkey() {
                        Ok(PubKey::Ed25519(k)) => PublicKey::from_bytes(k.key.0).ok(),
                        _ => None,
                    };
                    match offered {
                        Some(key) if accepts(&mut machine, shown, AuthMethod::PublicKey(key)) => {
                            allowed = Some(AuthMethod::PublicKey(key));
                            a.allow()
                        }
                        _ => a.reject(),
                    }
                }
                SshEvent::Serv(ServEvent::PasswordAuth(a)) => a.reject(),
                SshEvent::Serv(ServEvent::Authenticated) => {
                    // The decision point; the forwarder would persist the claim.
                    // Like the forwarder: no allowed method ends the connection.
                    let Some(method) = allowed.take() else {
                        return;
                    };
                    let _ = machine.step(Event::Authenticated {
                        conn: CONN,
                        peer: "192.0.2.1:40000".parse().expect("an address"),
                        shown,
                        method,
                    });
                    return;
                }
                SshEvent::Serv(ServEvent::Defunct) => return,
                SshEvent::None if input.is_empty() => return,
                // Channel events cannot come before authentication; anything
                // else needs no answer.
                _ => Ok(()),
            }
        };
        if answered.is_err() {
            return;
        }
        // The bytes to the client are dropped: the input was fixed up front.
        let pending = runner.output_buf().len();
        runner.consume_output(pending);
    }
});
