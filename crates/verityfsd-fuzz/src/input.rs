// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Drawing values from the fuzz input. Both never fail: once the input is used up they
//! return the first choice / the default, so every input decodes to something.

/// One of `from`, by the next input byte.
pub(crate) fn pick<T: Clone>(u: &mut arbitrary::Unstructured<'_>, from: &[T]) -> T {
    let i = usize::from(u.arbitrary::<u8>().unwrap_or(0)) % from.len();
    from[i].clone()
}

/// The next input value, or its default once the input is used up.
pub(crate) fn num<T: for<'b> arbitrary::Arbitrary<'b> + Default>(
    u: &mut arbitrary::Unstructured<'_>,
) -> T {
    u.arbitrary().unwrap_or_default()
}
