//! Code generation from the validated model.
//!
//! Generated code names the runtime only through `::hype::__private::…`
//! paths (or `PATH::__private::…` under `crate = "PATH"`), and its hidden
//! identifiers start with `__hype`. It stays small: the work is done by generic items of the
//! runtime (`Call`, `Registration::of`, `assert_wire`, `block_on`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Ident, LitInt, Type};

use crate::args::{Defaults, MainArgs, RemoteArgs, crate_path};
use crate::ast::{Main, Remote};
use crate::ctxt::Ctxt;

/// Expands `#[hype::remote]`. On any error the user's item is emitted
/// unchanged next to one `compile_error!` per problem, so the rest of the
/// crate (and the IDE) still sees the function.
pub fn remote(attr: TokenStream, item: TokenStream) -> TokenStream {
    let ctxt = Ctxt::new();
    let args = RemoteArgs::parse(&ctxt, attr);
    let remote = Remote::from_tokens(&ctxt, args, item.clone());
    if let Err(err) = ctxt.check() {
        return with_errors(err, without_variadic(item));
    }
    match remote {
        Some(remote) => expand_remote(&remote),
        // Not reachable: `from_tokens` reports an error whenever it gives `None`.
        None => item,
    }
}

/// Expands `#[hype::main]`, with the same error behaviour as [`remote`].
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    let ctxt = Ctxt::new();
    let args = MainArgs::parse(&ctxt, attr);
    let main = Main::from_tokens(&ctxt, item.clone());
    let result = ctxt.check();
    // Like tokio-macros, expand as usual even with errors when the item is a
    // function: an `async fn main` left as written would add rustc's
    // "`main` function is not allowed to be `async`" to our errors.
    let expanded = match main {
        Some(main) => expand_main(main, &args),
        None => item,
    };
    match result {
        Ok(()) => expanded,
        Err(err) => with_errors(err, expanded),
    }
}

/// The item as written, except that a variadic `...` (already reported) is
/// dropped, so rustc does not add its own errors about C-variadics.
fn without_variadic(item: TokenStream) -> TokenStream {
    match syn::parse2::<syn::ItemFn>(item.clone()) {
        Ok(mut function) if function.sig.variadic.is_some() => {
            function.sig.variadic = None;
            function.sig.inputs = std::mem::take(&mut function.sig.inputs)
                .into_pairs()
                .map(syn::punctuated::Pair::into_value)
                .collect();
            quote!(#function)
        }
        _ => item,
    }
}

fn with_errors(err: syn::Error, item: TokenStream) -> TokenStream {
    let errors = err.to_compile_error();
    quote!(#errors #item)
}

fn expand_remote(remote: &Remote) -> TokenStream {
    let Remote {
        attrs,
        vis,
        sig,
        block,
        name,
        krate,
        defaults,
        args,
        output,
        args_ident,
    } = remote;
    let private = quote!(#krate::__private);
    // serde's `crate` takes the path as a string.
    let serde_path = quote!(#private::serde).to_string().replace(' ', "");
    let fn_ident = &sig.ident;
    let fn_name = fn_ident.unraw().to_string();
    let idents: Vec<&Ident> = args.iter().map(|arg| &arg.ident).collect();
    let types: Vec<&Type> = args.iter().map(|arg| &arg.ty).collect();

    // `#[cfg]` must gate everything generated, not only the wrapper.
    let cfgs: Vec<&Attribute> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .collect();
    // Docs describe the wrapper; `#[deprecated]` there warns the user's callers,
    // on the body it would warn inside the generated `invoke`.
    let body_attrs = attrs
        .iter()
        .filter(|attr| !attr.path().is_ident("doc") && !attr.path().is_ident("deprecated"));
    let mut body_sig = sig.clone();
    body_sig.ident = Ident::new("__hype_body", Span::call_site());

    // Rustdoc cannot link to a raw identifier (`r#type`): name it unlinked.
    let fn_link = if fn_ident.to_string().starts_with("r#") {
        format!("`{fn_name}`")
    } else {
        format!("[`{fn_name}`]")
    };
    let struct_doc = format!("Arguments of the remote function {fn_link}.");
    let field_docs = idents
        .iter()
        .map(|ident| format!("Argument `{}` of {fn_link}.", ident.unraw()));
    let output_ty = match output {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let id = match name {
        Some(name) => quote!(#name),
        None => quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
    };
    let signature = LitInt::new(
        &format!(
            "0x{:016x}_u64",
            fnv1a64(
                normalised_signature(
                    &idents
                        .iter()
                        .copied()
                        .zip(types.iter().copied())
                        .collect::<Vec<_>>(),
                    output.as_ref()
                )
                .as_bytes()
            )
        ),
        Span::call_site(),
    );
    // Spanned on the user's type tokens, so a type without serde is
    // reported where it is written.
    let asserts = types.iter().copied().chain(output).map(|ty| {
        quote_spanned! {ty.span()=>
            const _: () = #private::assert_wire::<#ty>();
        }
    });
    let invoke = match &sig.asyncness {
        // Spanned on `async`, so a body whose future is not `Send` is
        // reported on the function rather than on the macro.
        Some(asyncness) => quote_spanned! {asyncness.span=>
            #private::Invoke::Pending(::std::boxed::Box::pin(__hype_body(#(#idents),*)))
        },
        None => quote!(#private::Invoke::Ready(__hype_body(#(#idents),*))),
    };

    let defaults = expand_defaults(defaults, &private);

    quote! {
        #(#attrs)*
        #vis fn #fn_ident(#(#idents: #types),*) -> #private::Call<#args_ident> {
            #private::Call::new(#args_ident { #(#idents),* })
        }

        #(#cfgs)*
        const _: () = {
            #(#asserts)*

            impl #private::RemoteFn for #args_ident {
                type Output = #output_ty;
                const ID: &'static str = #id;
                const SIGNATURE: u64 = #signature;
                #defaults

                fn invoke(self) -> #private::Invoke<Self::Output> {
                    #(#body_attrs)*
                    #body_sig #block
                    let #args_ident { #(#idents),* } = self;
                    #invoke
                }
            }

            #[#private::linkme::distributed_slice(#private::REMOTE_FNS)]
            #[linkme(crate = #private::linkme)]
            static __HYPE_REGISTRATION: #private::Registration =
                #private::Registration::of::<#args_ident>();
        };

        #(#cfgs)*
        #[doc = #struct_doc]
        #[derive(#private::serde::Serialize, #private::serde::Deserialize)]
        #[serde(crate = #serde_path)]
        #vis struct #args_ident {
            #(
                #[doc = #field_docs]
                #vis #idents: #types,
            )*
        }
    }
}

/// `const DEFAULTS: FunctionDefaults = FunctionDefaults::NONE.cpu("2")…;`,
/// or nothing (the trait's default, no defaults) when the attribute sets none.
fn expand_defaults(defaults: &Defaults, private: &TokenStream) -> TokenStream {
    let Defaults {
        cpu,
        memory,
        gpu,
        timeout_millis,
        retries,
        spot,
    } = defaults;
    let mut calls = Vec::new();
    if let Some(cpu) = cpu {
        calls.push(quote!(.cpu(#cpu)));
    }
    if let Some(memory) = memory {
        calls.push(quote!(.memory(#memory)));
    }
    if let Some((count, model)) = gpu {
        let model = match model {
            Some(model) => quote!(::core::option::Option::Some(#model)),
            None => quote!(::core::option::Option::None),
        };
        calls.push(quote!(.gpu(#count, #model)));
    }
    if let Some(millis) = timeout_millis {
        calls.push(quote!(.timeout_millis(#millis)));
    }
    if let Some(retries) = retries {
        calls.push(quote!(.retries(#retries)));
    }
    if let Some(spot) = spot {
        calls.push(quote!(.spot(#spot)));
    }
    if calls.is_empty() {
        return TokenStream::new();
    }
    quote! {
        const DEFAULTS: #private::FunctionDefaults = #private::FunctionDefaults::NONE #(#calls)*;
    }
}

fn expand_main(main: Main, args: &MainArgs) -> TokenStream {
    let syn::ItemFn {
        attrs,
        vis,
        mut sig,
        block,
    } = main.item;
    let krate = crate_path(args.krate.as_ref());
    let private = quote!(#krate::__private);
    // `hype-run` first (it exits when this process runs a call), then the
    // program's own Ctrl-C and SIGTERM handling, unless `interrupts =
    // false` leaves the signals to the program. After the body returns,
    // `block_on` and `run_main` wait for a close that a signal began, so
    // that the exit code is the signal's (with `interrupts = false`, only
    // if the program called `hype::interrupt::install` itself).
    let interrupts = args
        .interrupts
        .then(|| quote!(#private::handle_interrupts();));
    let dispatch = quote! {
        #private::dispatch_if_hype_run();
        #interrupts
    };
    let body = match sig.asyncness.take() {
        Some(_) => quote! {
            #dispatch
            #private::block_on(async move #block)
        },
        None => {
            let output = &sig.output;
            quote! {
                #dispatch
                #private::run_main(move || #output #block)
            }
        }
    };
    // The user's braces keep their spans, so "mismatched types" on the
    // body's value points at the body.
    let mut braced = TokenStream::new();
    block
        .brace_token
        .surround(&mut braced, |tokens| tokens.extend(body));
    quote!(#(#attrs)* #vis #sig #braced)
}

/// The text [`RemoteFn::SIGNATURE`] hashes: `hype-sig-v2(` + the
/// arguments in order, each `name:type`, joined by `,` + `)->` + the return
/// type. Names are as written without `r#` or `mut`, types are their tokens
/// with all whitespace removed, and the return type is `()` when there is
/// none. Names and order are in it, so swapping two arguments of one type
/// is caught.
///
/// [`RemoteFn::SIGNATURE`]: https://docs.rs/hype/latest/hype/trait.RemoteFn.html
pub fn normalised_signature(args: &[(&Ident, &Type)], output: Option<&Type>) -> String {
    let text = |ty: &Type| -> String {
        quote!(#ty)
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    };
    let args: Vec<String> = args
        .iter()
        .map(|(name, ty)| format!("{}:{}", name.unraw(), text(ty)))
        .collect();
    let output = output.map_or_else(|| "()".to_owned(), text);
    format!("hype-sig-v2({})->{output}", args.join(","))
}

/// FNV-1a, 64 bit; the same function as `hype_runtime::wire::fnv1a64`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(item: TokenStream) -> (String, u64) {
        let item: syn::ItemFn = syn::parse2(item).unwrap();
        let args: Vec<(&Ident, &Type)> = item
            .sig
            .inputs
            .iter()
            .map(|arg| match arg {
                syn::FnArg::Typed(arg) => match &*arg.pat {
                    syn::Pat::Ident(pat) => (&pat.ident, &*arg.ty),
                    _ => unreachable!(),
                },
                syn::FnArg::Receiver(_) => unreachable!(),
            })
            .collect();
        let output = match &item.sig.output {
            syn::ReturnType::Default => None,
            syn::ReturnType::Type(_, ty) => Some(&**ty),
        };
        let text = normalised_signature(&args, output);
        let hash = fnv1a64(text.as_bytes());
        (text, hash)
    }

    #[test]
    fn fnv1a64_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn signature_text_and_hash_are_pinned() {
        // Changing these values breaks calls between binaries built by
        // different hype versions; bump `hype-sig-v2` instead.
        assert_eq!(
            signature(quote!(
                fn f(a: Vec<u8>, b: String) -> Result<u64, E> {}
            )),
            (
                "hype-sig-v2(a:Vec<u8>,b:String)->Result<u64,E>".to_owned(),
                0xa46d_cd3f_d57a_7668
            )
        );
        assert_eq!(
            signature(quote!(
                async fn f() {}
            )),
            ("hype-sig-v2()->()".to_owned(), 0xcb4f_2ff1_b6a5_53f3)
        );
        assert_eq!(
            signature(quote!(
                fn f(mut text: std::string::String, n: (u32, [u8; 4])) -> Option<Vec<String>> {}
            )),
            (
                "hype-sig-v2(text:std::string::String,n:(u32,[u8;4]))->Option<Vec<String>>"
                    .to_owned(),
                0x1484_dfac_e5a7_30f3
            )
        );
    }

    #[test]
    fn names_order_and_return_type_are_in_the_signature() {
        let base = signature(quote!(
            fn f(width: u32, height: u32) -> u32 {}
        ));
        let swapped = signature(quote!(
            fn f(height: u32, width: u32) -> u32 {}
        ));
        let renamed = signature(quote!(
            fn f(w: u32, height: u32) -> u32 {}
        ));
        let other_return = signature(quote!(
            fn f(width: u32, height: u32) -> u64 {}
        ));
        for other in [&swapped, &renamed, &other_return] {
            assert_ne!(base.1, other.1, "{} vs {}", base.0, other.0);
        }
        // `mut` and `r#` are not part of the name.
        let raw = signature(quote!(
            fn f(mut r#type: u32, height: u32) -> u32 {}
        ));
        assert_eq!(raw.0, "hype-sig-v2(type:u32,height:u32)->u32");
    }

    #[test]
    fn signature_ignores_layout() {
        let a = signature(quote!(
            fn f(a: Vec<u8>) -> () {}
        ));
        let b = signature(quote!(
            fn f(a: Vec<u8>) {}
        ));
        assert_eq!(a, b);
    }

    fn expanded(attr: TokenStream, item: TokenStream) -> String {
        remote(attr, item).to_string()
    }

    #[test]
    fn sync_expansion() {
        let out = expanded(
            quote!(),
            quote!(
                /// Counts words.
                #[allow(clippy::needless_pass_by_value)]
                pub fn word_count(text: String, mut n: u32) -> usize {
                    0
                }
            ),
        );
        let wrapper = quote!(
            pub fn word_count(text: String, n: u32) -> ::hype::__private::Call<WordCountArgs> {
                ::hype::__private::Call::new(WordCountArgs { text, n })
            }
        );
        assert!(out.contains(&wrapper.to_string()), "{out}");
        assert!(
            out.contains(&quote!(pub struct WordCountArgs).to_string()),
            "{out}"
        );
        assert!(
            out.contains(&quote!(pub text: String, ).to_string()),
            "{out}"
        );
        let body = quote!(
            #[allow(clippy::needless_pass_by_value)]
            fn __hype_body(text: String, mut n: u32) -> usize {
                0
            }
        );
        assert!(out.contains(&body.to_string()), "{out}");
        assert!(
            out.contains(
                &quote!(::hype::__private::Invoke::Ready(__hype_body(text, n))).to_string()
            ),
            "{out}"
        );
        assert!(
            out.contains(
                &quote!(
                    type Output = usize;
                )
                .to_string()
            ),
            "{out}"
        );
        assert!(
            out.contains(
                &quote!(::core::concat!(::core::module_path!(), "::", "word_count")).to_string()
            ),
            "{out}"
        );
        // The doc comment stays on the wrapper only.
        assert_eq!(out.matches("Counts words.").count(), 1, "{out}");
        assert!(
            out.contains("Arguments of the remote function [`word_count`].")
                && out.contains("Argument `text` of [`word_count`]."),
            "{out}"
        );
    }

    #[test]
    fn async_expansion_with_name_override() {
        let out = expanded(
            quote!(name = "jobs::vars"),
            quote!(
                async fn r#type() {}
            ),
        );
        assert!(
            out.contains(
                &quote!(
                    struct TypeArgs {}
                )
                .to_string()
            ),
            "{out}"
        );
        assert!(
            out.contains("Arguments of the remote function `type`."),
            "{out}"
        );
        assert!(
            out.contains(&quote!(fn r#type() -> ::hype::__private::Call<TypeArgs>).to_string()),
            "{out}"
        );
        assert!(
            out.contains(
                &quote!(
                    const ID: &'static str = "jobs::vars";
                )
                .to_string()
            ),
            "{out}"
        );
        assert!(
            out.contains(
                &quote!(
                    type Output = ();
                )
                .to_string()
            ),
            "{out}"
        );
        assert!(
            out.contains(
                &quote!(
                    async fn __hype_body() {}
                )
                .to_string()
            ),
            "{out}"
        );
        assert!(
            out.contains(
                &quote!(::hype::__private::Invoke::Pending(::std::boxed::Box::pin(
                    __hype_body()
                )))
                .to_string()
            ),
            "{out}"
        );
        assert!(out.contains("0xcb4f2ff1b6a553f3_u64"), "{out}");
    }

    #[test]
    fn errors_keep_the_item() {
        let item = quote!(
            fn f(a: &str) -> u8 {
                1
            }
        );
        let out = expanded(quote!(nme = "x"), item.clone());
        assert_eq!(out.matches("compile_error").count(), 2, "{out}");
        assert!(out.ends_with(&item.to_string()), "{out}");
    }

    #[test]
    fn main_expansion() {
        let out = main(
            quote!(),
            quote!(
                async fn main() -> Result<(), E> {
                    f().await?;
                    Ok(())
                }
            ),
        )
        .to_string();
        let want = quote!(
            fn main() -> Result<(), E> {
                ::hype::__private::dispatch_if_hype_run();
                ::hype::__private::handle_interrupts();
                ::hype::__private::block_on(async move {
                    f().await?;
                    Ok(())
                })
            }
        );
        assert_eq!(out, want.to_string());
        let out = main(
            quote!(),
            quote!(
                #[allow(unused)]
                fn main() {
                    let x = 1;
                }
            ),
        )
        .to_string();
        let want = quote!(
            #[allow(unused)]
            fn main() {
                ::hype::__private::dispatch_if_hype_run();
                ::hype::__private::handle_interrupts();
                ::hype::__private::run_main(move || {
                    let x = 1;
                })
            }
        );
        assert_eq!(out, want.to_string());
        let out = main(
            quote!(),
            quote!(
                fn main() -> Result<(), E> {
                    f()?;
                    Ok(())
                }
            ),
        )
        .to_string();
        let want = quote!(
            fn main() -> Result<(), E> {
                ::hype::__private::dispatch_if_hype_run();
                ::hype::__private::handle_interrupts();
                ::hype::__private::run_main(move || -> Result<(), E> {
                    f()?;
                    Ok(())
                })
            }
        );
        assert_eq!(out, want.to_string());
    }

    #[test]
    fn crate_path_replaces_hype_everywhere() {
        let out = expanded(
            quote!(crate = "reexport::hype", name = "jobs::f"),
            quote!(
                async fn f(a: u8) -> u8 {
                    a
                }
            ),
        );
        // Every path to hype is the one given.
        let elsewhere = out.replace("reexport :: hype :: __private", "");
        assert!(!elsewhere.contains("hype ::"), "{out}");
        assert!(
            out.contains(
                &quote!(fn f(a: u8) -> reexport::hype::__private::Call<FArgs>).to_string()
            ),
            "{out}"
        );
        assert!(
            out.contains(
                &quote!(#[reexport::hype::__private::linkme::distributed_slice(
                    reexport::hype::__private::REMOTE_FNS
                )])
                .to_string()
            ),
            "{out}"
        );
        assert!(
            out.contains(&quote!(#[linkme(crate = reexport::hype::__private::linkme)]).to_string()),
            "{out}"
        );
        assert!(
            out.contains(&quote!(#[serde(crate = "reexport::hype::__private::serde")]).to_string()),
            "{out}"
        );
        let out = main(
            quote!(crate = "crate::h"),
            quote!(
                fn main() {}
            ),
        )
        .to_string();
        let want = quote!(
            fn main() {
                crate::h::__private::dispatch_if_hype_run();
                crate::h::__private::handle_interrupts();
                crate::h::__private::run_main(move || {})
            }
        );
        assert_eq!(out, want.to_string());
    }

    #[test]
    fn main_without_interrupts() {
        let out = main(
            quote!(interrupts = false),
            quote!(
                async fn main() {}
            ),
        )
        .to_string();
        let want = quote!(
            fn main() {
                ::hype::__private::dispatch_if_hype_run();
                ::hype::__private::block_on(async move {})
            }
        );
        assert_eq!(out, want.to_string());
        let out = main(
            quote!(interrupts = false, crate = "h"),
            quote!(
                fn main() {}
            ),
        )
        .to_string();
        let want = quote!(
            fn main() {
                h::__private::dispatch_if_hype_run();
                h::__private::run_main(move || {})
            }
        );
        assert_eq!(out, want.to_string());
        // `interrupts = true` is the default.
        let out = main(
            quote!(interrupts = true),
            quote!(
                fn main() {}
            ),
        )
        .to_string();
        assert!(out.contains("handle_interrupts"), "{out}");
    }

    #[test]
    fn main_errors() {
        let out = main(
            quote!(flavor = "x"),
            quote!(
                fn main<T>(a: u32) {}
            ),
        )
        .to_string();
        assert_eq!(out.matches("compile_error").count(), 3, "{out}");
        // Still expanded, so `async` is gone from `main`.
        let out = main(
            quote!(flavor = "x"),
            quote!(
                async fn main() {}
            ),
        )
        .to_string();
        assert!(out.contains("block_on"), "{out}");
        assert!(!out.contains("async fn"), "{out}");
    }

    #[test]
    fn variadic_is_dropped_from_the_item_on_error() {
        let out = expanded(
            quote!(),
            quote!(
                unsafe extern "C" fn f(a: u32, ...) {}
            ),
        );
        let want = quote!(
            unsafe extern "C" fn f(a: u32) {}
        );
        assert!(out.ends_with(&want.to_string()), "{out}");
    }
}
