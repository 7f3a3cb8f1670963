//! Visibility is the function's: wrapper, arguments struct and fields.
#![deny(warnings)]

use hype::RemoteFn;

mod outer {
    use hype::RemoteFn as _;

    pub(crate) mod inner {
        /// Crate-visible.
        #[hype::remote]
        pub(crate) fn shout(text: String) -> String {
            helper(&text)
        }

        /// Visible in `outer` only.
        #[hype::remote]
        pub(super) fn whisper(text: String) -> String {
            text.to_lowercase()
        }

        // Private names of the module are in scope in the body.
        fn helper(text: &str) -> String {
            text.to_uppercase()
        }
    }

    pub(crate) async fn whisper_here(text: String) -> String {
        let call: hype::Call<inner::WhisperArgs> = inner::whisper(text);
        call.run_here().await.unwrap()
    }

    #[hype::remote]
    fn private() -> u8 {
        7
    }

    pub(crate) async fn run_private() -> u8 {
        assert!(PrivateArgs::ID.ends_with("::outer::private"));
        private().run_here().await.unwrap()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let call = outer::inner::shout("hi".into());
    let args: &outer::inner::ShoutArgs = call.args();
    assert_eq!(args.text, "hi");
    assert_eq!(call.run_here().await.unwrap(), "HI");
    assert_eq!(outer::whisper_here("HI".into()).await, "hi");
    assert_eq!(outer::run_private().await, 7);
    assert_eq!(
        outer::inner::ShoutArgs::ID,
        concat!(module_path!(), "::outer::inner::shout")
    );
}
