import type { ReceivedWebhook } from '../../support/webhook-receiver.js';
import type { SentRequest } from './traffic.js';

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

/** One scenario's count of every request sent and every job accepted. */
export interface ScenarioRow {
  scenario: string;
  /** Requests the clients sent (retries of one request count once). */
  sent: number;
  /** Jobs the API accepted (distinct job ids in 200 and 202 answers). */
  accepted: number;
  succeeded: number;
  /** Accepted jobs that ended failed or canceled, by error code. */
  failed: Record<string, number>;
  /** Requests never accepted, by the last answer's code (`UNREACHABLE`: no answer at all). */
  refused: Record<string, number>;
  /** Accepted jobs that never reached a terminal state, or that the API no longer knows. */
  lost: number;
  /** Requests that made more than one job (a retry that was not recognised as one). */
  duplicated: number;
  /** Jobs whose model ran to completion more than once (allowed only when their worker died). */
  rerun: number;
  /** Async jobs that ended without a `completed` webhook, or with more than one `webhook-id`. */
  webhookFaults: number;
  /** p99 of the time from a request's first try to its accepting answer, in ms. */
  p99Ms: number;
  /** From the fault's end to the first request accepted after it, in ms (null: no fault ended). */
  recoveryMs: number | null;
  /**
   * The slowest 5xx refusal (no job made) answered to a request sent while the fault lasted, in ms
   * (a fast 503, not a hang). A 409 IDEMPOTENCY_KEY_IN_USE is not one: it waits for the key's first request by design.
   */
  slowestRefusalMs: number | null;
  /** Its status and code. */
  slowestRefusal: string | null;
}

export interface JobOutcome {
  status: string;
  code?: string;
  /** From the job's creation to its end, in ms, as its resource says. */
  ms?: number;
}

export interface LedgerInput {
  scenario: string;
  requests: SentRequest[];
  /** Each accepted job's final state, read back after the scenario (absent: unknown or unfinished). */
  outcomes: Map<string, JobOutcome>;
  /** How many times each job's model ran to completion (workers' `job done` lines). */
  runs: Map<string, number>;
  /** Every webhook the receiver got. */
  webhooks: ReceivedWebhook[];
  fault?: { from: number; to: number };
}

/** Reads every accepted job's final state through the API, a few at a time. */
export async function settleJobs(
  baseUrl: string,
  headers: Record<string, string>,
  jobIds: Iterable<string>,
  timeoutMs: number,
): Promise<Map<string, JobOutcome>> {
  const outcomes = new Map<string, JobOutcome>();
  const pending = [...jobIds];
  const until = Date.now() + timeoutMs;
  const reader = async () => {
    for (let id = pending.shift(); id !== undefined; id = pending.shift()) {
      const outcome = await finalState(baseUrl, headers, id, until);
      if (outcome) outcomes.set(id, outcome);
    }
  };
  await Promise.all(Array.from({ length: 8 }, reader));
  return outcomes;
}

async function finalState(
  baseUrl: string,
  headers: Record<string, string>,
  id: string,
  until: number,
): Promise<JobOutcome | undefined> {
  for (let delay = 100; Date.now() < until; delay = Math.min(delay * 2, 1000)) {
    const response = await fetch(`${baseUrl}/jobs/${id}`, {
      headers,
      signal: AbortSignal.timeout(5000),
    }).catch(() => undefined);
    if (response?.status === 404) return undefined;
    if (response?.ok) {
      const body = (await response.json()) as {
        status: string;
        error?: { code: string } | null;
        created_at?: string;
        completed_at?: string | null;
      };
      if (TERMINAL.has(body.status)) {
        const ms =
          body.created_at && body.completed_at
            ? Date.parse(body.completed_at) - Date.parse(body.created_at)
            : undefined;
        return {
          status: body.status,
          ...(body.error ? { code: body.error.code } : {}),
          ...(ms === undefined ? {} : { ms }),
        };
      }
    }
    await new Promise((r) => setTimeout(r, delay));
  }
  return undefined;
}

/** Counts one scenario: what was sent, accepted, finished, lost and duplicated. */
export function countScenario(input: LedgerInput): ScenarioRow {
  const { requests, outcomes, runs, webhooks, fault } = input;
  const accepted = new Set(requests.flatMap((r) => [...r.jobIds]));
  const failed: Record<string, number> = {};
  const refused: Record<string, number> = {};
  let succeeded = 0;
  let lost = 0;
  for (const id of accepted) {
    const outcome = outcomes.get(id);
    if (!outcome) lost++;
    else if (outcome.status === 'succeeded') succeeded++;
    else bump(failed, outcome.code ?? outcome.status.toUpperCase());
  }
  for (const request of requests) {
    if (request.jobIds.size === 0) bump(refused, request.code ?? refusalName(request.status));
  }
  const duplicated = requests.filter((r) => r.jobIds.size > 1).length;
  const rerun = [...runs.values()].filter((n) => n > 1).length;

  const hooks = new Map<string, Set<string>>();
  for (const hook of webhooks) {
    const id = (JSON.parse(hook.body) as { id?: string }).id;
    if (!id) continue;
    const ids = hooks.get(id) ?? new Set();
    ids.add(String(hook.headers['webhook-id']));
    hooks.set(id, ids);
  }
  const asyncJobs = requests.filter((r) => r.kind === 'async').flatMap((r) => [...r.jobIds]);
  const webhookFaults = asyncJobs.filter(
    (id) => outcomes.has(id) && hooks.get(id)?.size !== 1,
  ).length;

  const acceptedTimes = requests
    .filter((r) => r.jobIds.size > 0)
    .map((r) => r.ms)
    .sort((a, b) => a - b);
  const afterFault = fault
    ? requests
        .flatMap((r) => r.tries)
        .filter((t) => t.at >= fault.to && (t.status === 200 || t.status === 202))
        .map((t) => t.at + t.ms - fault.to)
    : [];
  const slowest = fault
    ? requests
        .flatMap((r) => r.tries)
        .filter((t) => t.at >= fault.from && t.at < fault.to && t.status >= 500 && !t.job)
        .sort((a, b) => b.ms - a.ms)[0]
    : undefined;

  return {
    scenario: input.scenario,
    sent: requests.length,
    accepted: accepted.size,
    succeeded,
    failed,
    refused,
    lost,
    duplicated,
    rerun,
    webhookFaults,
    p99Ms: percentile(acceptedTimes, 0.99),
    recoveryMs: afterFault.length > 0 ? Math.min(...afterFault) : null,
    slowestRefusalMs: slowest?.ms ?? null,
    slowestRefusal: slowest ? `${slowest.status} ${slowest.code ?? ''}`.trim() : null,
  };
}

/** The scenarios as a table, one row each. */
export function formatTable(rows: ScenarioRow[]): string {
  const header = [
    'scenario',
    'sent',
    'accepted',
    'succeeded',
    'failed',
    'refused',
    'lost',
    'dup',
    'rerun',
    'hooks',
    'p99 ms',
    'recovery ms',
    'slowest refusal ms',
  ];
  const codes = (counts: Record<string, number>) =>
    Object.entries(counts)
      .map(([code, n]) => `${code} ${n}`)
      .join(', ') || '-';
  const lines = rows.map((r) => [
    r.scenario,
    r.sent,
    r.accepted,
    r.succeeded,
    codes(r.failed),
    codes(r.refused),
    r.lost,
    r.duplicated,
    r.rerun,
    r.webhookFaults,
    Math.round(r.p99Ms),
    r.recoveryMs ?? '-',
    r.slowestRefusalMs === null ? '-' : `${r.slowestRefusalMs} (${r.slowestRefusal})`,
  ]);
  const cells = [header, ...lines].map((line) => line.map(String));
  const widths = header.map((_, i) => Math.max(...cells.map((line) => line[i]!.length)));
  const row = (line: string[]) => `| ${line.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [row(cells[0]!), row(widths.map((w) => '-'.repeat(w))), ...cells.slice(1).map(row)].join(
    '\n',
  );
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

function refusalName(status: number): string {
  return status === 0 ? 'UNREACHABLE' : `HTTP_${status}`;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}
