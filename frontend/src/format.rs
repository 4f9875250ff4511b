//! Numbers as the pages show them: times, durations, rates, shares and
//! sizes. Pure functions, the same on every page.

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let in_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_date(days);
    let (hour, minute) = (in_day / 3600, in_day % 3600 / 60);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

/// A duration in seconds as `2 h 05 min`, `4 min 10 s` or `12 s`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "unknown".into();
    }
    let secs = secs.round() as u64;
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s:02} s"),
        (h, m, _) => format!("{h} h {m:02} min"),
    }
}

/// A share from 0 to 1 as a percentage with one decimal.
pub fn percent(share: f64) -> String {
    format!("{:.1} %", share * 100.0)
}

/// A learning rate or other small number in compact scientific notation.
pub fn scientific(value: f64) -> String {
    format!("{value:.1e}")
}

/// A byte count in KB or MB (powers of 1024).
pub fn bytes(n: f64) -> String {
    const KIB: f64 = 1024.0;
    if n >= KIB * KIB {
        format!("{:.1} MB", n / (KIB * KIB))
    } else {
        format!("{:.0} KB", (n / KIB).ceil())
    }
}

/// Year, month and day of a day count since 1970-01-01, in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_read_as_utc_dates() {
        // Checked with `date -u -d @SECS`.
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_time(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_time(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(utc_time(-1), "1969-12-31 23:59 UTC");
    }

    #[test]
    fn durations_use_the_two_largest_units() {
        assert_eq!(duration(12.4), "12 s");
        assert_eq!(duration(250.0), "4 min 10 s");
        assert_eq!(duration(7500.0), "2 h 05 min");
        assert_eq!(duration(f64::NAN), "unknown");
    }

    #[test]
    fn shares_rates_and_sizes() {
        assert_eq!(percent(0.4567), "45.7 %");
        assert_eq!(scientific(0.0005), "5.0e-4");
        assert_eq!(bytes(1500.0), "2 KB");
        assert_eq!(bytes(3.5 * 1024.0 * 1024.0), "3.5 MB");
    }
}
