//! [`KeyPart`] for other crates' types, each behind the feature of the same name.

#[allow(unused_imports)]
use super::{KeyPart, PartWriter};

/// `KeyPart` through `Display`, for types whose display form is their canonical text.
#[allow(unused_macros)]
macro_rules! display_parts {
    ($($ty:ty),*) => {$(
        impl KeyPart for $ty {
            /// The `Display` form (ISO 8601 for dates and times).
            fn write_part(&self, out: &mut PartWriter<'_>) {
                out.push_display(self);
            }
        }
    )*};
}

#[cfg(feature = "uuid")]
#[cfg_attr(docsrs, doc(cfg(feature = "uuid")))]
impl KeyPart for uuid::Uuid {
    /// The hyphenated lowercase form.
    fn write_part(&self, out: &mut PartWriter<'_>) {
        out.push_display(&self.hyphenated());
    }
}

#[cfg(feature = "chrono")]
mod chrono_parts {
    use super::{KeyPart, PartWriter};

    display_parts!(chrono::NaiveDate, chrono::NaiveTime, chrono::NaiveDateTime);

    #[cfg_attr(docsrs, doc(cfg(feature = "chrono")))]
    impl<Tz: chrono::TimeZone> KeyPart for chrono::DateTime<Tz> {
        /// RFC 3339 in UTC, so one instant is one key whatever the offset it was given in.
        fn write_part(&self, out: &mut PartWriter<'_>) {
            out.push_display(&self.naive_utc());
            out.push_str("Z");
        }
    }
}

#[cfg(feature = "time")]
mod time_parts {
    use super::{KeyPart, PartWriter};

    display_parts!(time::Date, time::Time, time::PrimitiveDateTime);

    #[cfg_attr(docsrs, doc(cfg(feature = "time")))]
    impl KeyPart for time::OffsetDateTime {
        /// The instant in UTC, so one instant is one key whatever the offset it was given in.
        fn write_part(&self, out: &mut PartWriter<'_>) {
            let utc = self.to_offset(time::UtcOffset::UTC);
            out.push_display(&time::PrimitiveDateTime::new(utc.date(), utc.time()));
            out.push_str("Z");
        }
    }
}

#[cfg(feature = "axum")]
mod axum_parts {
    use super::{KeyPart, PartWriter};

    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    impl<T: KeyPart> KeyPart for axum::extract::Path<T> {
        /// The extracted value.
        fn write_part(&self, out: &mut PartWriter<'_>) {
            self.0.write_part(out);
        }
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    impl<T: KeyPart> KeyPart for axum::extract::Query<T> {
        /// The extracted value.
        fn write_part(&self, out: &mut PartWriter<'_>) {
            self.0.write_part(out);
        }
    }
}

#[cfg(feature = "actix")]
mod actix_parts {
    use super::{KeyPart, PartWriter};

    #[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
    impl<T: KeyPart> KeyPart for actix_web::web::Path<T> {
        /// The extracted value.
        fn write_part(&self, out: &mut PartWriter<'_>) {
            (**self).write_part(out);
        }
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "actix")))]
    impl<T: KeyPart> KeyPart for actix_web::web::Query<T> {
        /// The extracted value.
        fn write_part(&self, out: &mut PartWriter<'_>) {
            (**self).write_part(out);
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "uuid")]
    #[test]
    fn uuids_are_hyphenated() {
        let id = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
        assert_eq!(
            crate::key!(id).as_str(),
            "12345678-9abc-def0-1234-56789abcdef0"
        );
    }

    #[cfg(feature = "chrono")]
    #[test]
    fn chrono_dates_and_instants() {
        use chrono::{FixedOffset, NaiveDate, TimeZone};
        let day = NaiveDate::from_ymd_opt(2024, 5, 1).unwrap_or_default();
        assert_eq!(crate::key!(day).as_str(), "2024-05-01");
        let utc = chrono::Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).single();
        let paris = FixedOffset::east_opt(7200)
            .and_then(|tz| tz.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).single());
        assert_eq!(
            utc.map(|t| crate::key!(t)),
            paris.map(|t| crate::key!(t)),
            "one instant, one key"
        );
    }

    #[cfg(feature = "time")]
    #[test]
    fn time_dates_and_instants() {
        let day = time::Date::from_calendar_date(2024, time::Month::May, 1).ok();
        assert_eq!(
            day.map(|d| crate::key!(d).to_string()).as_deref(),
            Some("2024-05-01")
        );
        let utc = time::OffsetDateTime::UNIX_EPOCH;
        let shifted =
            utc.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap_or(time::UtcOffset::UTC));
        assert_eq!(
            crate::key!(utc),
            crate::key!(shifted),
            "one instant, one key"
        );
    }
}
