import type { Config } from '../../shared/config/config.js';
import type { Outcome } from '../load-generator.js';
import type { RolePids } from '../process-stats.js';
import type { Teardown } from '../teardown.js';

export const CONTENDER_NAMES = ['direct', 'plain', 'floor', 'gateway', 'cached', 'async'] as const;
/** The contenders, as `--only` names them. */
export type ContenderName = (typeof CONTENDER_NAMES)[number];

/** How the report names each contender. */
export const CONTENDER_LABELS: Record<ContenderName, string> = {
  direct: 'direct pipeline',
  plain: 'plain server',
  floor: 'BullMQ floor',
  gateway: 'gateway sync',
  cached: 'gateway sync, cache hits',
  async: 'gateway async accept',
};

/** `Name`: the predict suite's contenders, or another suite's names (e.g. batching on and off). */
interface ContenderBase<Name extends string> {
  readonly name: Name;
  /** The child processes its requests run in: their CPU and memory are charged to it. */
  readonly pids: RolePids;
  /** Its requests go through Redis: Redis's CPU and commands are charged to them. */
  readonly usesRedis: boolean;
  /** One request with these image bytes (unique per request; the cached contender undoes that). */
  send(image: Buffer): Promise<Outcome>;
}

/** Measured in closed loops at each concurrency level for `--seconds`. */
export interface ClosedLoopContender<Name extends string = ContenderName>
  extends ContenderBase<Name> {
  readonly load: 'closed-loop';
}

/** Measured by a burst of a fixed number of requests, then given time to finish the work. */
export interface BurstContender<Name extends string = ContenderName> extends ContenderBase<Name> {
  readonly load: 'burst';
  /** Resolves once the work the burst left behind is done (the queue drained). */
  settle(): Promise<void>;
}

export type Contender<Name extends string = ContenderName> =
  | ClosedLoopContender<Name>
  | BurstContender<Name>;

/** What starting a contender needs; each registers its own clean-up in `teardown`. */
export interface ContenderContext {
  /** The benchmark's configuration, read once from the environment (Redis URL, model paths). */
  config: Config;
  /** Where child processes write their stdout and stderr. */
  logDir: string;
  teardown: Teardown;
}
