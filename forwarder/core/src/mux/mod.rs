//! The multiplexer of docs/protocol.md section 2 (placeholder, owned by the mux helper).
