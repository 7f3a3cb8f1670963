//! The validated model between parsing and code generation: [`Remote`] and
//! [`Main`], built from the item by the signature checks of
//! [`crate::check`] and the attribute arguments of [`crate::args`].
//!
//! Building a model never stops at the first problem: every check reports to
//! the [`Ctxt`] and carries on, so the user sees all errors of an item in one
//! compilation. Code generation only runs on a model with no errors.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident};
use syn::ext::IdentExt;
use syn::{
    Attribute, Block, FnArg, Ident, Item, ItemFn, Pat, PatIdent, ReturnType, Signature, Type,
    Visibility,
};

use crate::args::{Defaults, RemoteArgs, crate_path};
use crate::check::{
    Position, check_no_generics, check_no_where_clause, check_qualifiers, check_type, is_unit,
};
use crate::ctxt::Ctxt;
use crate::tokens::tokens_text;

/// A `#[hype::remote]` function as validation saw it; code generation uses
/// it only when the [`Ctxt`] holds no error.
pub struct Remote {
    /// The function's attributes, doc comments included.
    pub attrs: Vec<Attribute>,
    /// The function's visibility, given to the wrapper, the arguments
    /// struct and its fields.
    pub vis: Visibility,
    /// The function's signature as written (`mut` bindings included).
    pub sig: Signature,
    /// The function's body.
    pub block: Box<Block>,
    /// The `name = "…"` override of the ID.
    pub name: Option<syn::LitStr>,
    /// The path generated code names hype by: `crate = "…"`, else `::hype`.
    pub krate: syn::Path,
    /// The attribute's defaults (`cpu`, `memory`, `gpu`, `timeout`,
    /// `retries`, `spot`), each value already checked.
    pub defaults: Defaults,
    /// The arguments, in order.
    pub args: Vec<Arg>,
    /// The return type; `None` for `()` written or left out.
    pub output: Option<Type>,
    /// The generated arguments struct: `{UpperCamelName}Args`.
    pub args_ident: Ident,
}

/// One argument of a [`Remote`] function.
pub struct Arg {
    /// The argument's name, without `mut`.
    pub ident: Ident,
    /// The argument's type.
    pub ty: Type,
}

/// A `#[hype::main]` function as validation saw it.
pub struct Main {
    /// The function as written.
    pub item: ItemFn,
}

impl Remote {
    /// Validates the item `#[hype::remote]` was applied to, reporting every
    /// problem to `ctxt`. `None` only when the item is not a function (an
    /// error has then been reported).
    pub fn from_tokens(ctxt: &Ctxt, args: RemoteArgs, item: TokenStream) -> Option<Remote> {
        let item = parse_fn(
            ctxt,
            "#[hype::remote]",
            item,
            "a free function such as `fn word_count(text: String) -> usize`",
        )?;
        let ItemFn {
            attrs,
            vis,
            sig,
            block,
        } = item;
        let args_ident = format_ident!(
            "{}Args",
            upper_camel_case(&sig.ident.unraw().to_string()),
            span = sig.ident.span()
        );
        check_qualifiers(ctxt, &sig);
        check_no_generics(ctxt, "#[hype::remote]", &sig);

        let mut remote_args = Vec::with_capacity(sig.inputs.len());
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(receiver) => ctxt.error_spanned_by(
                    receiver,
                    format!(
                        "#[hype::remote] functions cannot take `{}`: only the arguments travel to the remote process; make it a free function that takes the value as an owned argument",
                        tokens_text(receiver)
                    ),
                ),
                FnArg::Typed(arg) => {
                    for attr in &arg.attrs {
                        if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
                            ctxt.error_spanned_by(
                                attr,
                                "#[hype::remote] arguments cannot carry `#[cfg]`: the arguments struct has one field per argument; put the `#[cfg]` on the whole function",
                            );
                        }
                    }
                    let ident = arg_ident(ctxt, &arg.pat, &args_ident);
                    check_type(ctxt, &arg.ty, Position::Argument);
                    if let Some(ident) = ident {
                        remote_args.push(Arg {
                            ident,
                            ty: (*arg.ty).clone(),
                        });
                    }
                }
            }
        }
        if let Some(variadic) = &sig.variadic {
            ctxt.error_spanned_by(
                variadic,
                "#[hype::remote] functions cannot be variadic: remove `...` and take a `Vec<T>` instead",
            );
        }
        let output = match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) if is_unit(ty) => None,
            ReturnType::Type(_, ty) => {
                check_type(ctxt, ty, Position::Return);
                Some((**ty).clone())
            }
        };
        check_no_where_clause(ctxt, "#[hype::remote]", &sig);
        Some(Remote {
            attrs,
            vis,
            sig,
            block,
            name: args.name,
            krate: crate_path(args.krate.as_ref()),
            defaults: args.defaults,
            args: remote_args,
            output,
            args_ident,
        })
    }
}

impl Main {
    /// Validates the item `#[hype::main]` was applied to, reporting every
    /// problem to `ctxt`. `None` only when the item is not a function.
    pub fn from_tokens(ctxt: &Ctxt, item: TokenStream) -> Option<Main> {
        let item = parse_fn(
            ctxt,
            "#[hype::main]",
            item,
            "`fn main()` or `async fn main()`",
        )?;
        check_no_generics(ctxt, "#[hype::main]", &item.sig);
        if !item.sig.inputs.is_empty() {
            ctxt.error_spanned_by(
                &item.sig.inputs,
                "#[hype::main] functions cannot take arguments: read the command line with `std::env::args()`",
            );
        }
        if let Some(variadic) = &item.sig.variadic {
            ctxt.error_spanned_by(
                variadic,
                "#[hype::main] functions cannot take arguments: read the command line with `std::env::args()`",
            );
        }
        check_no_where_clause(ctxt, "#[hype::main]", &item.sig);
        Some(Main { item })
    }
}

/// Parses the attribute's item as a function with a body; anything else is
/// reported, naming what it is and what the attribute accepts.
fn parse_fn(ctxt: &Ctxt, attr: &str, item: TokenStream, accepted: &str) -> Option<ItemFn> {
    let item = match syn::parse2::<Item>(item) {
        Ok(item) => item,
        Err(err) => {
            ctxt.syn_error(err);
            return None;
        }
    };
    let (what, head): (&str, TokenStream) = match &item {
        Item::Fn(item) => return Some(item.clone()),
        Item::Struct(i) => ("a struct", head(&i.struct_token, &i.ident)),
        Item::Enum(i) => ("an enum", head(&i.enum_token, &i.ident)),
        Item::Union(i) => ("a union", head(&i.union_token, &i.ident)),
        Item::Trait(i) => ("a trait", head(&i.trait_token, &i.ident)),
        Item::Impl(i) => ("an impl block", head(&i.impl_token, &i.self_ty)),
        Item::Mod(i) => ("a module", head(&i.mod_token, &i.ident)),
        Item::Const(i) => ("a const", head(&i.const_token, &i.ident)),
        Item::Static(i) => ("a static", head(&i.static_token, &i.ident)),
        Item::Type(i) => ("a type alias", head(&i.type_token, &i.ident)),
        Item::Use(i) => ("a use declaration", i.to_token_stream()),
        Item::ForeignMod(i) => ("an extern block", i.abi.to_token_stream()),
        Item::Macro(i) => ("a macro", i.mac.path.to_token_stream()),
        other => ("this item", other.to_token_stream()),
    };
    ctxt.error_spanned_by(
        head,
        format!("{attr} applies to a `fn` or `async fn` with a body, not to {what}; put it on {accepted}"),
    );
    None
}

fn head(keyword: &dyn ToTokens, name: &dyn ToTokens) -> TokenStream {
    let mut tokens = keyword.to_token_stream();
    name.to_tokens(&mut tokens);
    tokens
}

/// The name an argument binds; anything but `name` or `mut name` is reported.
fn arg_ident(ctxt: &Ctxt, pat: &Pat, args_ident: &Ident) -> Option<Ident> {
    let advice = match pat {
        Pat::Ident(PatIdent {
            by_ref: None,
            subpat: None,
            ident,
            ..
        }) => return Some(ident.clone()),
        Pat::Ident(PatIdent {
            by_ref: Some(_),
            ident,
            subpat: None,
            ..
        }) => format!("arguments are moved into the function; write `{ident}`"),
        Pat::Wild(_) => "give it a name, such as `_unused`".to_owned(),
        _ => format!(
            "each argument becomes a field of `{args_ident}`; bind a name and destructure it in the body"
        ),
    };
    ctxt.error_spanned_by(
        pat,
        format!(
            "#[hype::remote] arguments must be plain names such as `text: String`, not the pattern `{}`: {advice}",
            tokens_text(pat)
        ),
    );
    None
}

/// `word_count` → `WordCount`: each `_`-separated part capitalised, the rest
/// of each part kept as written. A name of underscores only gives `Fn`.
pub fn upper_camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for part in name.split('_').filter(|part| !part.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    if out.is_empty() {
        out.push_str("Fn");
    }
    out
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    #[test]
    fn upper_camel_case_names() {
        assert_eq!(upper_camel_case("word_count"), "WordCount");
        assert_eq!(upper_camel_case("env_vars2"), "EnvVars2");
        assert_eq!(upper_camel_case("type"), "Type");
        assert_eq!(upper_camel_case("_private__fn_"), "PrivateFn");
        assert_eq!(upper_camel_case("alreadyCamel"), "AlreadyCamel");
        assert_eq!(upper_camel_case("élan_vital"), "ÉlanVital");
        assert_eq!(upper_camel_case("__"), "Fn");
    }

    fn remote_errors(item: TokenStream) -> Vec<String> {
        let ctxt = Ctxt::new();
        let _ = Remote::from_tokens(&ctxt, RemoteArgs::default(), item);
        match ctxt.check() {
            Ok(()) => Vec::new(),
            Err(err) => err.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn valid_functions_pass() {
        assert_eq!(
            remote_errors(quote!(
                fn f() {}
            )),
            Vec::<String>::new()
        );
        assert_eq!(
            remote_errors(quote!(
                pub(crate) async fn f(mut a: Vec<u8>, b: (String, [u64; 3])) -> Result<u64, E> {
                    todo!()
                }
            )),
            Vec::<String>::new()
        );
    }

    #[test]
    fn borrows_are_found_anywhere() {
        assert_eq!(
            remote_errors(quote!(
                fn f(a: &str, b: Vec<Cow<'a, str>>, c: Option<(u8, &'static [u8])>) -> &Path {}
            )),
            [
                "#[hype::remote] arguments must be owned: `&str` borrows; use an owned type such as `String`",
                "#[hype::remote] arguments must be owned: `Cow<'a, str>` borrows; use an owned type such as `String`",
                "#[hype::remote] arguments must be owned: `&'static [u8]` borrows; use an owned type such as `Vec<u8>`",
                "#[hype::remote] return types must be owned: `&Path` borrows; use an owned type such as `PathBuf`",
            ]
        );
    }

    #[test]
    fn every_signature_problem_is_reported_in_order() {
        let errors = remote_errors(quote!(
            const unsafe extern "C" fn f<T>(
                &self,
                (a, b): (u8, u8),
                _: u8,
                ref c: u8,
                d: impl Into<String>,
            ) -> impl Iterator<Item = u8>
            where
                T: Clone,
            {
            }
        ));
        let starts: Vec<&str> = errors
            .iter()
            .map(|e| e.split(": ").next().unwrap())
            .collect();
        assert_eq!(
            starts,
            [
                "#[hype::remote] functions cannot be `const fn`",
                "#[hype::remote] functions cannot be `unsafe fn`",
                "#[hype::remote] functions cannot be `extern \"C\" fn`",
                "#[hype::remote] functions cannot be generic",
                "#[hype::remote] functions cannot take `&self`",
                "#[hype::remote] arguments must be plain names such as `text",
                "#[hype::remote] arguments must be plain names such as `text",
                "#[hype::remote] arguments must be plain names such as `text",
                "#[hype::remote] arguments cannot be `impl Trait`",
                "#[hype::remote] return types cannot be `impl Trait`",
                "#[hype::remote] functions cannot have a `where` clause; remove it",
            ],
            "{errors:#?}"
        );
        assert!(errors[3].contains("`<T>`"), "{}", errors[3]);
        assert!(errors[6].ends_with("not the pattern `_`: give it a name, such as `_unused`"));
        assert!(errors[7].ends_with(
            "not the pattern `ref c`: arguments are moved into the function; write `c`"
        ));
        assert!(errors[8].ends_with("use a concrete owned type such as `String`"));
        assert!(errors[9].ends_with("`impl Iterator<Item = u8>` has no single type to send back; use a concrete owned type such as `Vec<u8>`"));
    }

    #[test]
    fn non_functions_are_named() {
        assert_eq!(
            remote_errors(quote!(
                struct S {
                    a: u8,
                }
            )),
            [
                "#[hype::remote] applies to a `fn` or `async fn` with a body, not to a struct; put it on a free function such as `fn word_count(text: String) -> usize`"
            ]
        );
    }
}
