//! Invitation tokens are pasted by operators from e-mails and chats: a
//! token never panics the parser, and one that parses is exactly the token
//! its invite prints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meridian_core::trust::Invite;

fuzz_target!(|token: &str| {
    if let Ok(invite) = Invite::from_token(token) {
        let again = Invite::from_token(&invite.to_token()).expect("a printed invite parses");
        assert_eq!(invite, again);
    }
});
