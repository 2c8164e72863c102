//! A WebSocket frame as the server receives it: `Message::decode` must
//! answer every input with a message or an error, never a panic, and a
//! decoded message must survive encoding and decoding again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sync_core::protocol::Message;

fuzz_target!(|frame: &[u8]| {
    if let Ok(message) = Message::decode(frame) {
        let _ = message.summary();
        let again = Message::decode(&message.encode()).expect("an encoded message decodes");
        assert_eq!(again, message);
    }
});
