//! [`FlowTable::send_queued`] against a real session with no IO: datagrams
//! leave one per flow in turn, only below the transmit low-water mark, and
//! a flow asks the driver for a turn once per drain.

use pp_mux::{Event, MuxSession, Phase, Side, StreamId};
use tokio::sync::mpsc::{self, UnboundedReceiver};

use crate::driver::Command;
use crate::flow::{FlowTable, MuxFlow, TRANSMIT_LOW_WATER};

/// A WN session with two flows open, its PP peer, and the table holding
/// the two flows; `commands` receives what the flows ask of the driver.
struct Bench {
    wn: MuxSession,
    pp: MuxSession,
    table: FlowTable,
    commands: UnboundedReceiver<Command>,
    a: MuxFlow,
    b: MuxFlow,
}

fn bench() -> Bench {
    let mut wn = MuxSession::new(Side::Wn);
    let mut pp = MuxSession::new(Side::Pp(Phase::Kubernetes));
    let a_id = wn.open_flow("A").unwrap();
    let b_id = wn.open_flow("B").unwrap();
    pp.receive(&wn.take_transmit());
    while pp.next_event().unwrap().is_some() {}
    let (tx, commands) = mpsc::unbounded_channel();
    let mut table = FlowTable::default();
    let a = table.add(a_id, tx.clone());
    let b = table.add(b_id, tx);
    Bench {
        wn,
        pp,
        table,
        commands,
        a,
        b,
    }
}

impl Bench {
    /// Hands the flows' turn requests to the table; returns how many.
    fn schedule(&mut self) -> usize {
        let mut count = 0;
        while let Ok(command) = self.commands.try_recv() {
            if let Command::FlowReady { stream } = command {
                self.table.mark_ready(stream);
                count += 1;
            }
        }
        count
    }

    /// The flows and first bytes of the datagrams the peer receives.
    fn arrived(&mut self) -> Vec<(StreamId, u8)> {
        self.pp.receive(&self.wn.take_transmit());
        let mut arrived = Vec::new();
        while let Some(event) = self.pp.next_event().unwrap() {
            if let Event::Datagram { stream, bytes } = event {
                arrived.push((stream, bytes[0]));
            }
        }
        arrived
    }
}

#[test]
fn queued_datagrams_leave_one_per_flow_in_turn() {
    let mut bench = bench();
    for i in 0..5 {
        bench.a.send(&[i]).unwrap();
    }
    for i in 0..2 {
        bench.b.send(&[10 + i]).unwrap();
    }
    assert_eq!(bench.schedule(), 2, "one turn request per flow");
    assert!(bench.table.send_queued(&mut bench.wn, 0).unwrap());
    let (a, b) = (bench.a.id(), bench.b.id());
    assert_eq!(
        bench.arrived(),
        [(a, 0), (b, 10), (a, 1), (b, 11), (a, 2), (a, 3), (a, 4)]
    );
    assert_eq!(bench.a.stats().sent_datagrams, 5);
    assert_eq!(bench.b.stats().sent_datagrams, 2);
    // Drained: the next datagram asks for a turn again.
    bench.b.send(&[12]).unwrap();
    assert_eq!(bench.schedule(), 1);
}

#[test]
fn nothing_moves_at_the_low_water_mark_and_little_just_below_it() {
    let mut bench = bench();
    for i in 0..3 {
        bench.a.send(&[i]).unwrap();
    }
    bench.schedule();
    assert!(
        !bench
            .table
            .send_queued(&mut bench.wn, TRANSMIT_LOW_WATER)
            .unwrap()
    );
    assert_eq!(bench.wn.transmit_backlog(), 0);
    assert!(
        bench
            .table
            .send_queued(&mut bench.wn, TRANSMIT_LOW_WATER - 1)
            .unwrap()
    );
    assert_eq!(
        bench.a.stats().sent_datagrams,
        1,
        "one frame crosses the mark"
    );
    // The rest waits for its turn, in order.
    assert!(bench.table.send_queued(&mut bench.wn, 0).unwrap());
    let a = bench.a.id();
    assert_eq!(bench.arrived(), [(a, 0), (a, 1), (a, 2)]);
}

#[tokio::test]
async fn all_flows_of_a_connection_hold_at_most_the_shared_budget() {
    use pp_mux::{FLOW_QUEUE_BYTES, FLOWS_HELD_BYTES, MAX_DATAGRAM};
    let (tx, _commands) = mpsc::unbounded_channel();
    let mut table = FlowTable::default();
    let flows_to_fill_the_budget = FLOWS_HELD_BYTES / FLOW_QUEUE_BYTES;
    let flows: Vec<MuxFlow> = (1..=flows_to_fill_the_budget + 2)
        .map(|n| table.add(StreamId::new(2 * n as u32).unwrap(), tx.clone()))
        .collect();
    let per_flow = FLOW_QUEUE_BYTES / MAX_DATAGRAM;
    for flow in &flows {
        for _ in 0..per_flow {
            table.deliver(flow.id(), vec![7; MAX_DATAGRAM]);
        }
    }
    let held: u64 = flows.iter().map(|f| f.stats().received_bytes).sum();
    let dropped: u64 = flows
        .iter()
        .map(|f| f.stats().dropped_receive_queue_full)
        .sum();
    assert_eq!(
        held, FLOWS_HELD_BYTES as u64,
        "the budget, not one byte more"
    );
    assert_eq!(dropped, (2 * per_flow) as u64, "the two flows past it drop");
    let last = flows.last().unwrap();
    // Reading a datagram gives its bytes back: the next one fits.
    assert_eq!(flows[0].recv().await.unwrap().len(), MAX_DATAGRAM);
    table.deliver(last.id(), vec![8; MAX_DATAGRAM]);
    assert_eq!(last.stats().received_datagrams, 1);
    // So does dropping a flow with unread datagrams, closed or not.
    table.close(
        flows[1].id(),
        crate::flow::FlowClosed::PeerReset("x".into()),
    );
    let mut flows = flows;
    drop(flows.remove(1));
    for _ in 0..per_flow {
        table.deliver(flows.last().unwrap().id(), vec![9; MAX_DATAGRAM]);
    }
    assert_eq!(
        flows.last().unwrap().stats().received_datagrams,
        per_flow as u64,
        "the freed room is the last flow's now"
    );
}
