//! Paged listings: `?after=ID&limit=N` in (rows with an id above `after`, at most `limit`), and
//! the `next_after` that asks for the following page out.

use crate::http::error::{ApiError, ApiResult};

/// Rows in a page when the client does not say.
pub const DEFAULT_LIMIT: i64 = 100;
/// The most rows a page may have.
pub const MAX_LIMIT: i64 = 1000;

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub after: i64,
    pub limit: i64,
}

impl Page {
    /// `after` defaults to 0 (from the start) and must not be negative; `limit` defaults to
    /// `DEFAULT_LIMIT` and must be between 1 and `MAX_LIMIT`.
    pub fn new(after: Option<i64>, limit: Option<i64>) -> ApiResult<Self> {
        let after = after.unwrap_or(0);
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if after < 0 {
            return Err(ApiError::bad_call("after must not be negative"));
        }
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_call(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        Ok(Self { after, limit })
    }

    /// The `after` of the next page: the id of the last row of a full page; none after a short
    /// page, which is the last.
    pub fn next_after<T>(&self, rows: &[T], id: impl Fn(&T) -> i64) -> Option<i64> {
        (rows.len() as i64 == self.limit)
            .then(|| rows.last().map(id))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_defaults_to_the_start_and_refuses_bad_bounds() {
        let p = Page::new(None, None).unwrap();
        assert_eq!((p.after, p.limit), (0, DEFAULT_LIMIT));
        assert!(Page::new(Some(-1), None).is_err());
        assert!(Page::new(None, Some(0)).is_err());
        assert!(Page::new(None, Some(MAX_LIMIT + 1)).is_err());
        assert!(Page::new(Some(5), Some(MAX_LIMIT)).is_ok());
    }

    #[test]
    fn only_a_full_page_points_to_a_next_one() {
        let p = Page::new(None, Some(2)).unwrap();
        assert_eq!(p.next_after(&[3, 7], |i| *i), Some(7));
        assert_eq!(p.next_after(&[3], |i| *i), None);
        assert_eq!(p.next_after::<i64>(&[], |i| *i), None);
    }
}
