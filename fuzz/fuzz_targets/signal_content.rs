#![no_main]
//! Signaling event content: parse, and what parses must round-trip.
use libfuzzer_sys::fuzz_target;
use meshrtc::signal::content::Signal;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sig) = Signal::parse(s) {
        assert_eq!(Signal::parse(&sig.to_content()), Ok(sig));
    }
});
