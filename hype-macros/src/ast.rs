//! The validated model between parsing and code generation, and the
//! [`Ctxt`] that collects every problem found on the way.
//!
//! Validation never stops at the first problem: each check reports to the
//! context and carries on, so the user sees all errors of an item in one
//! compilation. Code generation only runs on a model with no errors.

use std::cell::RefCell;
use std::fmt::Display;
use std::thread;

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt;
use syn::{
    Attribute, Block, FnArg, GenericArgument, Ident, Item, ItemFn, Pat, PatIdent, PathArguments,
    ReturnType, Signature, Type, TypeParamBound, Visibility,
};

use crate::args::RemoteArgs;

/// Collects the errors of one macro invocation, in the order they are found.
///
/// Modelled on serde_derive's `Ctxt`: it must be [`Ctxt::check`]ed before it
/// is dropped, so no error can be lost on the way.
pub struct Ctxt {
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    /// An empty collector.
    pub fn new() -> Self {
        Ctxt {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// Records an error spanned on the tokens of `obj` (first to last).
    pub fn error_spanned_by<A: ToTokens, T: Display>(&self, obj: A, msg: T) {
        self.syn_error(syn::Error::new_spanned(obj.into_token_stream(), msg));
    }

    /// Records an error at `span`.
    pub fn error_at<T: Display>(&self, span: Span, msg: T) {
        self.syn_error(syn::Error::new(span, msg));
    }

    /// Records an error produced by syn.
    pub fn syn_error(&self, err: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("Ctxt used after check")
            .push(err);
    }

    /// Consumes the collector: `Ok` when nothing was recorded, else every
    /// error combined into one (which renders as one `compile_error!` each).
    pub fn check(self) -> syn::Result<()> {
        let errors = self.errors.borrow_mut().take().expect("Ctxt checked twice");
        let mut errors = errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for error in errors {
            combined.combine(error);
        }
        Err(combined)
    }
}

impl Default for Ctxt {
    fn default() -> Self {
        Ctxt::new()
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !thread::panicking() && self.errors.borrow().is_some() {
            panic!("hype-macros: Ctxt dropped without check()");
        }
    }
}

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

/// `const`, `unsafe` and `extern` have no meaning for a function called
/// through hype; each is reported on its own token.
fn check_qualifiers(ctxt: &Ctxt, sig: &Signature) {
    if let Some(constness) = &sig.constness {
        ctxt.error_spanned_by(
            constness,
            "#[hype::remote] functions cannot be `const fn`: the body runs at run time in another process; remove `const`",
        );
    }
    if let Some(unsafety) = &sig.unsafety {
        ctxt.error_spanned_by(
            unsafety,
            "#[hype::remote] functions cannot be `unsafe fn`: no caller on the remote side can uphold a safety contract; make the function safe and put an `unsafe` block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        ctxt.error_spanned_by(
            abi,
            format!(
                "#[hype::remote] functions cannot be `{} fn`: hype calls them with the Rust ABI; remove `{}`",
                tokens_text(abi),
                tokens_text(abi)
            ),
        );
    }
}

fn check_no_generics(ctxt: &Ctxt, attr: &str, sig: &Signature) {
    let generics = &sig.generics;
    if generics.params.is_empty() {
        return;
    }
    let text = tokens_text(generics);
    let lifetimes_only = generics
        .params
        .iter()
        .all(|param| matches!(param, syn::GenericParam::Lifetime(_)));
    let msg = if attr == "#[hype::main]" {
        format!("{attr} functions cannot be generic; remove `{text}`")
    } else if lifetimes_only {
        format!(
            "{attr} functions cannot have lifetime parameters: `{text}` lets arguments borrow, but they travel to another process; remove it and use owned types"
        )
    } else {
        format!(
            "{attr} functions cannot be generic: `{text}` has no single type to send or receive; remove the parameters and use concrete owned types"
        )
    };
    ctxt.error_spanned_by(generics, msg);
}

/// Reported apart from [`check_no_generics`] so errors come in source order.
fn check_no_where_clause(ctxt: &Ctxt, attr: &str, sig: &Signature) {
    if let Some(where_clause) = &sig.generics.where_clause {
        ctxt.error_spanned_by(
            where_clause,
            format!("{attr} functions cannot have a `where` clause; remove it"),
        );
    }
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

#[derive(Clone, Copy)]
enum Position {
    Argument,
    Return,
}

impl Position {
    fn plural(self) -> &'static str {
        match self {
            Position::Argument => "arguments",
            Position::Return => "return types",
        }
    }
}

/// Reports every borrow (`&`, lifetime) and `impl Trait` in `ty`, each on the
/// smallest type that contains it.
fn check_type(ctxt: &Ctxt, ty: &Type, position: Position) {
    match ty {
        Type::Reference(_) => report_borrowed(ctxt, ty, position),
        Type::ImplTrait(_) => {
            let tail = match owned(ty) {
                Some(owned) => format!(
                    "use a concrete owned type such as `{}`",
                    tokens_text(&owned)
                ),
                None => "use a concrete owned type".to_owned(),
            };
            let what = match position {
                Position::Argument => "has no single type to send",
                Position::Return => "has no single type to send back",
            };
            ctxt.error_spanned_by(
                ty,
                format!(
                    "#[hype::remote] {} cannot be `impl Trait`: `{}` {what}; {tail}",
                    position.plural(),
                    tokens_text(ty)
                ),
            );
        }
        Type::Path(path) => {
            if let Some(qself) = &path.qself {
                check_type(ctxt, &qself.ty, position);
            }
            let has_lifetime = path.path.segments.iter().any(|segment| {
                matches!(&segment.arguments, PathArguments::AngleBracketed(args)
                    if args.args.iter().any(|arg| matches!(arg, GenericArgument::Lifetime(_))))
            });
            if has_lifetime {
                report_borrowed(ctxt, ty, position);
                return;
            }
            for segment in &path.path.segments {
                check_path_arguments(ctxt, &segment.arguments, position);
            }
        }
        Type::TraitObject(object) => {
            if object
                .bounds
                .iter()
                .any(|bound| matches!(bound, TypeParamBound::Lifetime(_)))
            {
                report_borrowed(ctxt, ty, position);
                return;
            }
            for bound in &object.bounds {
                if let TypeParamBound::Trait(bound) = bound {
                    for segment in &bound.path.segments {
                        check_path_arguments(ctxt, &segment.arguments, position);
                    }
                }
            }
        }
        Type::Array(array) => check_type(ctxt, &array.elem, position),
        Type::Slice(slice) => check_type(ctxt, &slice.elem, position),
        Type::Paren(paren) => check_type(ctxt, &paren.elem, position),
        Type::Group(group) => check_type(ctxt, &group.elem, position),
        Type::Tuple(tuple) => {
            for elem in &tuple.elems {
                check_type(ctxt, elem, position);
            }
        }
        // Pointers, fn pointers, `!` and macros are left to the type checker:
        // the generated `assert_wire` rejects them with its own message.
        _ => {}
    }
}

fn check_path_arguments(ctxt: &Ctxt, arguments: &PathArguments, position: Position) {
    match arguments {
        PathArguments::None => {}
        PathArguments::AngleBracketed(args) => {
            for arg in &args.args {
                match arg {
                    GenericArgument::Type(ty) => check_type(ctxt, ty, position),
                    GenericArgument::AssocType(assoc) => check_type(ctxt, &assoc.ty, position),
                    _ => {}
                }
            }
        }
        PathArguments::Parenthesized(args) => {
            for input in &args.inputs {
                check_type(ctxt, input, position);
            }
            if let ReturnType::Type(_, output) = &args.output {
                check_type(ctxt, output, position);
            }
        }
    }
}

fn report_borrowed(ctxt: &Ctxt, ty: &Type, position: Position) {
    let tail = match owned(ty) {
        Some(owned) => format!("use an owned type such as `{}`", tokens_text(&owned)),
        None => "use an owned type without lifetime parameters".to_owned(),
    };
    ctxt.error_spanned_by(
        ty,
        format!(
            "#[hype::remote] {} must be owned: `{}` borrows; {tail}",
            position.plural(),
            tokens_text(ty)
        ),
    );
}

fn is_unit(ty: &Type) -> bool {
    match ty {
        Type::Tuple(tuple) => tuple.elems.is_empty(),
        Type::Paren(paren) => is_unit(&paren.elem),
        Type::Group(group) => is_unit(&group.elem),
        _ => false,
    }
}

/// An owned type to suggest instead of `ty`: borrows replaced by what owns
/// the data (`&str` → `String`, `&[T]` → `Vec<T>`, `Cow<'a, T>` → owned `T`),
/// `impl Trait` by a type that would do for common traits. `None` when there
/// is no good guess (a user type with lifetime parameters, `impl Fn`).
fn owned(ty: &Type) -> Option<Type> {
    match ty {
        Type::Reference(reference) => owned_referent(&reference.elem),
        Type::ImplTrait(imp) => {
            let TypeParamBound::Trait(bound) = imp.bounds.first()? else {
                return None;
            };
            let last = bound.path.segments.last()?;
            let (generic, assoc) = single_generic(&last.arguments);
            match last.ident.to_string().as_str() {
                "Into" | "AsRef" | "Borrow" => owned_referent(generic?),
                "Iterator" | "IntoIterator" | "ExactSizeIterator" | "DoubleEndedIterator" => {
                    let item = owned(assoc?)?;
                    Some(syn::parse_quote!(Vec<#item>))
                }
                "Future" => owned(assoc?),
                "ToString" | "Display" => Some(syn::parse_quote!(String)),
                _ => None,
            }
        }
        Type::Path(path) => {
            let mut path = path.clone();
            if let Some(qself) = &mut path.qself {
                *qself.ty = owned(&qself.ty)?;
            }
            if let Some(last) = path.path.segments.last()
                && last.ident == "Cow"
                && let PathArguments::AngleBracketed(args) = &last.arguments
                && let Some(GenericArgument::Type(inner)) = args.args.last()
            {
                return owned_referent(inner);
            }
            for segment in &mut path.path.segments {
                if let PathArguments::AngleBracketed(args) = &mut segment.arguments {
                    if args
                        .args
                        .iter()
                        .any(|arg| matches!(arg, GenericArgument::Lifetime(_)))
                    {
                        return None;
                    }
                    for arg in &mut args.args {
                        match arg {
                            GenericArgument::Type(ty) => *ty = owned(ty)?,
                            GenericArgument::AssocType(assoc) => assoc.ty = owned(&assoc.ty)?,
                            _ => {}
                        }
                    }
                }
            }
            Some(Type::Path(path))
        }
        Type::Array(array) => {
            let mut array = array.clone();
            *array.elem = owned(&array.elem)?;
            Some(Type::Array(array))
        }
        Type::Slice(slice) => {
            let elem = owned(&slice.elem)?;
            Some(syn::parse_quote!(Vec<#elem>))
        }
        Type::Tuple(tuple) => {
            let mut tuple = tuple.clone();
            for elem in &mut tuple.elems {
                *elem = owned(elem)?;
            }
            Some(Type::Tuple(tuple))
        }
        Type::Paren(paren) => owned(&paren.elem),
        Type::Group(group) => owned(&group.elem),
        Type::TraitObject(_) => None,
        other => Some(other.clone()),
    }
}

/// What owns the data a `&T` points to.
fn owned_referent(ty: &Type) -> Option<Type> {
    if let Type::Path(path) = ty
        && path.qself.is_none()
        && let Some(ident) = path.path.get_ident()
    {
        let owner = match ident.to_string().as_str() {
            "str" => Some(quote!(String)),
            "Path" => Some(quote!(PathBuf)),
            "OsStr" => Some(quote!(OsString)),
            "CStr" => Some(quote!(CString)),
            _ => None,
        };
        if let Some(owner) = owner {
            return syn::parse2(owner).ok();
        }
    }
    owned(ty)
}

/// The first generic type and the first associated type binding of a path
/// segment: `Into<String>` → `String`, `Iterator<Item = u8>` → `u8`.
fn single_generic(arguments: &PathArguments) -> (Option<&Type>, Option<&Type>) {
    let PathArguments::AngleBracketed(args) = arguments else {
        return (None, None);
    };
    let generic = args.args.iter().find_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    let assoc = args.args.iter().find_map(|arg| match arg {
        GenericArgument::AssocType(assoc) => Some(&assoc.ty),
        _ => None,
    });
    (generic, assoc)
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

/// Tokens as a human writes them, for error messages: `& 'a str` → `&'a str`,
/// `Vec < u8 >` → `Vec<u8>`, `Cow < 'a , str >` → `Cow<'a, str>`.
pub fn tokens_text<T: ToTokens + ?Sized>(tokens: &T) -> String {
    let raw = tokens.to_token_stream().to_string();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    // Keep one space only between two words, and after the keywords that
    // rustfmt separates from what follows.
    let mut compact = String::with_capacity(raw.len());
    let mut pending_space = false;
    for c in raw.chars() {
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && let Some(last) = compact.chars().last() {
            // The word just written, and what precedes it (`'` for a lifetime).
            let word_start = compact
                .char_indices()
                .rev()
                .take_while(|&(_, c)| is_word(c))
                .last()
                .map_or(compact.len(), |(i, _)| i);
            let word = &compact[word_start..];
            let lifetime = compact[..word_start].ends_with('\'');
            let after_keyword = lifetime
                || ["mut", "dyn", "impl", "const", "unsafe", "extern", "as"].contains(&word);
            let before_string = c == '"' && is_word(last);
            if (is_word(last) && is_word(c))
                || (after_keyword && c != ',' && c != '>')
                || before_string
            {
                compact.push(' ');
            }
        }
        pending_space = false;
        compact.push(c);
    }
    let mut out = String::with_capacity(compact.len() + 8);
    let chars: Vec<char> = compact.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let prev = if i > 0 {
            chars.get(i - 1).copied()
        } else {
            None
        };
        match c {
            ',' | ';' if next.is_some() => out.push_str(&format!("{c} ")),
            ':' if next != Some(':') && prev != Some(':') => out.push_str(": "),
            '+' => out.push_str(" + "),
            '-' if next == Some('>') => out.push_str(" -"),
            '>' if prev == Some('-') => out.push_str("> "),
            '=' if !matches!(next, Some('=' | '>'))
                && !matches!(prev, Some('=' | '!' | '<' | '>')) =>
            {
                out.push_str(" = ")
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(tokens: TokenStream) -> Type {
        syn::parse2(tokens).unwrap()
    }

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

    #[test]
    fn types_render_as_written() {
        assert_eq!(tokens_text(&ty(quote!(&str))), "&str");
        assert_eq!(tokens_text(&ty(quote!(&'a mut [u8]))), "&'a mut [u8]");
        assert_eq!(tokens_text(&ty(quote!(Cow<'a, str>))), "Cow<'a, str>");
        assert_eq!(
            tokens_text(&ty(quote!(impl Iterator<Item = (u8, String)> + Send))),
            "impl Iterator<Item = (u8, String)> + Send"
        );
        assert_eq!(
            tokens_text(&ty(quote!(Box<dyn Fn(u8) -> u8>))),
            "Box<dyn Fn(u8) -> u8>"
        );
        assert_eq!(tokens_text(&ty(quote!([u8; 4]))), "[u8; 4]");
        assert_eq!(tokens_text(&ty(quote!(*const u8))), "*const u8");
        assert_eq!(
            tokens_text(&ty(quote!(<T as ::std::ops::Add>::Output))),
            "<T as ::std::ops::Add>::Output"
        );
        let generics: syn::Generics =
            syn::parse2(quote!(<'a, T: Default, const N: usize>)).unwrap();
        assert_eq!(tokens_text(&generics), "<'a, T: Default, const N: usize>");
    }

    #[test]
    fn owned_suggestions() {
        let suggest = |tokens: TokenStream| owned(&ty(tokens)).map(|t| tokens_text(&t));
        assert_eq!(suggest(quote!(&str)).as_deref(), Some("String"));
        assert_eq!(suggest(quote!(&'a [u8])).as_deref(), Some("Vec<u8>"));
        assert_eq!(suggest(quote!(&Path)).as_deref(), Some("PathBuf"));
        assert_eq!(
            suggest(quote!(&mut Vec<&str>)).as_deref(),
            Some("Vec<String>")
        );
        assert_eq!(suggest(quote!(Cow<'a, str>)).as_deref(), Some("String"));
        assert_eq!(
            suggest(quote!(Cow<'static, [u64]>)).as_deref(),
            Some("Vec<u64>")
        );
        assert_eq!(
            suggest(quote!(Option<&'static str>)).as_deref(),
            Some("Option<String>")
        );
        assert_eq!(suggest(quote!(Parsed<'a>)), None);
        assert_eq!(
            suggest(quote!(impl Into<String>)).as_deref(),
            Some("String")
        );
        assert_eq!(suggest(quote!(impl AsRef<str>)).as_deref(), Some("String"));
        assert_eq!(
            suggest(quote!(impl Iterator<Item = &'a str>)).as_deref(),
            Some("Vec<String>")
        );
        assert_eq!(suggest(quote!(impl Fn(u8))), None);
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
