//! The date and time xtask's FAT images stamp on their files: the build's (`SOURCE_DATE_EPOCH`
//! when set), as fatfs's `TimeProvider`, not fatfs's default of 1980-00-00.

/// The date and time fatfs stamps on every file it writes: one instant, the build's.
#[derive(Debug)]
pub struct BuildTime(pub fatfs::DateTime);

impl fatfs::TimeProvider for BuildTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

/// Seconds since 1970 (UTC) as a FAT date and time, within FAT's years 1980-2107.
pub fn fat_date_time(seconds: u64) -> fatfs::DateTime {
    const FIRST: u64 = 315_532_800; // 1980-01-01
    const LAST: u64 = 4_354_819_199; // 2107-12-31 23:59:59
    let seconds = seconds.clamp(FIRST, LAST) as i64;
    let (year, month, day) = boxinit::net::clock::civil_from_days(seconds.div_euclid(86_400));
    let rest = seconds.rem_euclid(86_400);
    fatfs::DateTime {
        date: fatfs::Date {
            year: year as u16,
            month: month as u16,
            day: day as u16,
        },
        time: fatfs::Time {
            hour: (rest / 3600) as u16,
            min: (rest / 60 % 60) as u16,
            sec: (rest % 60) as u16,
            millis: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_dates_of_seconds() {
        let shown = |s: u64| {
            let t = fat_date_time(s);
            (
                t.date.year,
                t.date.month,
                t.date.day,
                t.time.hour,
                t.time.min,
                t.time.sec,
            )
        };
        assert_eq!(shown(1_796_608_800), (2026, 12, 7, 2, 0, 0));
        assert_eq!(shown(0), (1980, 1, 1, 0, 0, 0));
        assert_eq!(shown(u64::MAX), (2107, 12, 31, 23, 59, 59));
    }
}
