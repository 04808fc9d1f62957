/**
 * How often a cron schedule fires, for judging the seed's age: the seed is stale once it is older
 * than two periods (docs/doctor.md). Pure.
 *
 * The period is the longest gap between consecutive firings, so it is one week for `0 4 * * 1`,
 * one day for `0 4 * * *`, 17 days for `0 4 1,15 * *` (the 15th to the 1st after a 31-day month)
 * and four years for `0 0 29 2 *`. A schedule that fires unevenly is judged by its longest
 * quiet stretch, never by an average that a seed could outlive without anything going wrong.
 *
 * Cron as GitHub Actions reads it (POSIX fields, UTC): minute, hour, day of month, month, day of
 * week; `*`, numbers, names of months and days, ranges, lists and `/step`. When both the day of
 * month and the day of week are restricted, a day matches either (`0 4 1 * 1`: the 1st and every
 * Monday), as in every cron since Vixie's.
 */

const FIELDS = [
  { min: 0, max: 59 },
  { min: 0, max: 23 },
  { min: 1, max: 31 },
  {
    min: 1,
    max: 12,
    names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'],
  },
  { min: 0, max: 6, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
] as const;

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
/**
 * The days scanned: 28 years, the cycle after which the Gregorian calendar repeats its weekdays
 * and leap days (between 1901 and 2099), so every day-of-month/month/weekday combination that
 * ever fires in that range fires in here, and the longest gap between those days is measured.
 */
const SCAN_START_MS = Date.UTC(2001, 0, 1);
const SCAN_DAYS = Math.round((Date.UTC(2029, 0, 1) - SCAN_START_MS) / DAY_MS);

/** Thrown for a schedule that is not five valid cron fields (the config schema checks first). */
export class CronError extends Error {}

interface ParsedCron {
  minutes: Set<number>;
  hours: Set<number>;
  daysOfMonth: Set<number>;
  months: Set<number>;
  daysOfWeek: Set<number>;
  /** Day of month and day of week both restricted (neither starts with `*`): either matches. */
  eitherDay: boolean;
  domStar: boolean;
  dowStar: boolean;
}

function parseField(text: string, index: number): Set<number> {
  const spec = FIELDS[index] as { min: number; max: number; names?: readonly string[] };
  const value = (part: string): number => {
    const byName = spec.names?.indexOf(part.toLowerCase()) ?? -1;
    if (byName >= 0) return byName + spec.min;
    if (!/^\d+$/.test(part)) throw new CronError(`"${text}": "${part}" is not a number`);
    const n = Number(part);
    if (n < spec.min || n > spec.max) {
      throw new CronError(`"${text}": ${n} is outside ${spec.min}-${spec.max}`);
    }
    return n;
  };
  const values = new Set<number>();
  for (const item of text.split(',')) {
    const [range = '', stepText, ...extra] = item.split('/');
    if (extra.length > 0) throw new CronError(`"${text}": two steps`);
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw new CronError(`"${text}": bad step`);
    let from: number;
    let to: number;
    if (range === '*') {
      from = spec.min;
      to = spec.max;
    } else {
      const [first = '', last, ...more] = range.split('-');
      if (more.length > 0) throw new CronError(`"${text}": bad range`);
      from = value(first);
      // `5/15` means from 5 to the end, every 15.
      to = last !== undefined ? value(last) : stepText !== undefined ? spec.max : from;
      if (from > to) throw new CronError(`"${text}": range runs backwards`);
    }
    for (let n = from; n <= to; n += step) values.add(n);
  }
  return values;
}

export function parseCron(expression: string): ParsedCron {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5) throw new CronError(`"${expression}" does not have five fields`);
  const [minutes, hours, daysOfMonth, months, daysOfWeek] = fields.map((field, i) =>
    parseField(field, i),
  ) as [Set<number>, Set<number>, Set<number>, Set<number>, Set<number>];
  const domStar = (fields[2] ?? '').startsWith('*');
  const dowStar = (fields[4] ?? '').startsWith('*');
  return {
    minutes,
    hours,
    daysOfMonth,
    months,
    daysOfWeek,
    eitherDay: !domStar && !dowStar,
    domStar,
    dowStar,
  };
}

function dayMatches(cron: ParsedCron, date: Date): boolean {
  if (!cron.months.has(date.getUTCMonth() + 1)) return false;
  const dom = cron.daysOfMonth.has(date.getUTCDate());
  const dow = cron.daysOfWeek.has(date.getUTCDay());
  if (cron.eitherDay) return dom || dow;
  return dom && dow;
}

/**
 * The longest gap between consecutive firings of `expression`, in milliseconds, or undefined when
 * it never fires (`0 0 30 2 *`: February 30).
 */
export function schedulePeriodMs(expression: string): number | undefined {
  const cron = parseCron(expression);
  // Every firing day fires at the same times of day.
  const times = [...cron.hours]
    .sort((a, b) => a - b)
    .flatMap((hour) => [...cron.minutes].sort((a, b) => a - b).map((minute) => hour * 60 + minute));
  const first = times[0] as number;
  const last = times[times.length - 1] as number;
  let longestWithinDay = 0;
  for (let i = 1; i < times.length; i++) {
    longestWithinDay = Math.max(longestWithinDay, (times[i] as number) - (times[i - 1] as number));
  }
  let previousDay: number | undefined;
  let firstDay: number | undefined;
  let longestDays = 0;
  for (let day = 0; day < SCAN_DAYS; day++) {
    if (!dayMatches(cron, new Date(SCAN_START_MS + day * DAY_MS))) continue;
    if (previousDay !== undefined) longestDays = Math.max(longestDays, day - previousDay);
    firstDay ??= day;
    previousDay = day;
  }
  if (firstDay === undefined || previousDay === undefined) return undefined;
  // The scan's window is one period of the calendar: its last firing day is followed by its first.
  longestDays = Math.max(longestDays, firstDay + SCAN_DAYS - previousDay);
  // From the last firing of one day to the first of the next firing day.
  const acrossDays = longestDays * 1440 - (last - first);
  return Math.max(longestWithinDay, acrossDays) * MINUTE_MS;
}
