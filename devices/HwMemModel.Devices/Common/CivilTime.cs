namespace HwMemModel.Devices.Common;

/// <summary>
/// Broken-down UTC time as C's <c>struct tm</c> holds it (month 0-11, weekday 0 = Sunday), with conversions to and
/// from seconds since 1970-01-01 that accept any input without throwing (out-of-range fields are normalised
/// arithmetically, as QEMU's mktimegm does).
/// </summary>
internal readonly record struct CivilTime(long Year, int Month, int Day, int Hour, int Minute, int Second, int Weekday)
{
    /// <summary>Seconds since the epoch for the given fields (proleptic Gregorian; fields may be out of range).</summary>
    public static long ToEpochSeconds(long year, long month1To12, long day, long hour, long minute, long second)
    {
        // Shift the year so that it starts in March; then days follow a fixed 153-days-per-5-months pattern.
        long y = year;
        long m = month1To12;
        if (m < 3)
        {
            m += 12;
            y--;
        }

        long days = day + ((153 * m) - 457) / 5 + 365 * y + FloorDiv(y, 4) - FloorDiv(y, 100) + FloorDiv(y, 400) - 719469;
        return days * 86400 + hour * 3600 + minute * 60 + second;
    }

    /// <summary>The broken-down time for <paramref name="epochSeconds"/> (any value, also before 1970).</summary>
    public static CivilTime FromEpochSeconds(long epochSeconds)
    {
        long days = FloorDiv(epochSeconds, 86400);
        long secondOfDay = epochSeconds - days * 86400;
        int weekday = (int)FloorMod(days + 4, 7); // 1970-01-01 was a Thursday.

        // Civil-from-days over 400-year eras starting on 0000-03-01.
        long z = days + 719468;
        long era = FloorDiv(z, 146097);
        long dayOfEra = z - era * 146097;
        long yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146096) / 365;
        long dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100);
        long mp = (5 * dayOfYear + 2) / 153;
        int day = (int)(dayOfYear - (153 * mp + 2) / 5 + 1);
        int month = (int)(mp < 10 ? mp + 3 : mp - 9);
        long year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
        return new CivilTime(year, month - 1, day, (int)(secondOfDay / 3600), (int)(secondOfDay / 60 % 60),
            (int)(secondOfDay % 60), weekday);
    }

    private static long FloorDiv(long a, long b) => a >= 0 ? a / b : -((-a + b - 1) / b);

    private static long FloorMod(long a, long b) => a - FloorDiv(a, b) * b;
}
