//! [`tokens_text`]: tokens printed as a human writes them, for the error
//! messages of the checks and of the validated model.

use quote::ToTokens;

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
    use proc_macro2::TokenStream;
    use quote::quote;
    use syn::Type;

    use super::*;

    fn ty(tokens: TokenStream) -> Type {
        syn::parse2(tokens).unwrap()
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
}
