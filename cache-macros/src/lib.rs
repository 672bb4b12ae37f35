//! `#[cache_result(expire = 1800, key_prefix = "user_stats")]`: turns an `async fn`, a method or
//! a web handler into a read-through of [`cache_core`]'s `Cache::get_or_try_insert_with`.
//!
//! Use it through `cache_core` (feature `macros`, on by default): `use cache_core::cache_result;`.
//! The documentation, with examples, is on `cache_core::cache_result`.
//!
//! [`cache_core`]: https://docs.rs/cache-core

mod attr;
mod expand;
mod validate;

use proc_macro::TokenStream;

/// Caches an async function's result; see `cache_core::cache_result` for the options.
#[proc_macro_attribute]
pub fn cache_result(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::cache_result(attr.into(), item.into()).into()
}

/// Errors collected across parsing and validation, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, err: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(err),
            None => self.0 = Some(err),
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn into_result(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}
