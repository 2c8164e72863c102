//! End-to-end tests: real servers and real clients over real sockets.
//!
//! Not built yet: the suites arrive with the server's sync endpoint. The
//! server's own integration tests (`server/tests/`) already start the real
//! binary and `serve` on `127.0.0.1:0`.
