import type { BackendKind, ModelDefinition } from '../../shared/models/model-spec.js';

/** A backend that can serve the request now, in the order the model lists its backends. */
export interface Candidate {
  backend: BackendKind;
  /** Jobs queued or running per worker slot; absent when unknown. */
  load?: number;
}

/**
 * Picks one backend among the candidates by the model's routing strategy. Round robin and weighted
 * keep a little state per model (a turn counter, the smooth weighted round robin's running
 * weights), so one selector lives as long as its router; it is per process, and every process
 * spreads its own requests.
 */
export class BackendSelector {
  private readonly turns = new Map<string, number>();
  private readonly running = new Map<string, Map<BackendKind, number>>();

  choose(model: ModelDefinition, candidates: readonly Candidate[]): BackendKind {
    const first = candidates[0];
    if (!first) throw new RangeError('choose() needs at least one candidate');
    if (candidates.length === 1) return first.backend;
    switch (model.routing.strategy) {
      case 'priority':
        return first.backend;
      case 'round_robin': {
        const turn = this.turns.get(model.name) ?? 0;
        this.turns.set(model.name, (turn + 1) % Number.MAX_SAFE_INTEGER);
        return candidates[turn % candidates.length]!.backend;
      }
      case 'least_loaded':
        return leastLoaded(candidates);
      case 'weighted':
        return this.weighted(model, candidates);
    }
  }

  /**
   * Smooth weighted round robin (as nginx balances upstreams): each turn every candidate gains its
   * weight, the richest is picked and pays the total. Over any run of turns each backend gets its
   * share, evenly spread rather than in bursts.
   */
  private weighted(model: ModelDefinition, candidates: readonly Candidate[]): BackendKind {
    const weights = candidates.map(({ backend }) => model.routing.weights?.[backend] ?? 1);
    const total = weights.reduce((sum, w) => sum + w, 0);
    // Every candidate weighs 0: they are all fallbacks, so the first one serves.
    if (total === 0) return candidates[0]!.backend;
    let running = this.running.get(model.name);
    if (!running) {
      running = new Map();
      this.running.set(model.name, running);
    }
    let best = 0;
    candidates.forEach(({ backend }, i) => {
      running.set(backend, (running.get(backend) ?? 0) + weights[i]!);
      if (running.get(backend)! > running.get(candidates[best]!.backend)!) best = i;
    });
    const chosen = candidates[best]!.backend;
    running.set(chosen, running.get(chosen)! - total);
    return chosen;
  }
}

/** The candidate with the least load; ties, and unknown loads, go to the earlier one. */
function leastLoaded(candidates: readonly Candidate[]): BackendKind {
  let best = candidates[0]!;
  for (const candidate of candidates.slice(1)) {
    if ((candidate.load ?? Number.POSITIVE_INFINITY) < (best.load ?? Number.POSITIVE_INFINITY)) {
      best = candidate;
    }
  }
  return best.backend;
}
