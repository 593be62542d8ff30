//! Fuzz the incremental HTTP response parser: the first byte picks how the
//! rest is split into `feed` calls; bodies never pass the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pp_http::{Progress, ResponseParser};

const LIMIT: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let step = usize::from(split).max(1);
    let mut parser = ResponseParser::new(LIMIT);
    for piece in bytes.chunks(step) {
        match parser.feed(piece) {
            Ok(Progress::NeedMore) => {}
            Ok(Progress::Done(response)) => {
                assert!(response.body.len() <= LIMIT);
                return;
            }
            Err(_) => return,
        }
    }
    if let Ok(response) = parser.finish() {
        assert!(response.body.len() <= LIMIT);
    }
});
