/**
 * Everything the benchmark has to undo (child processes, connections, Redis keys, temp folders),
 * registered as it is set up and undone in reverse order. `run()` keeps its promise, so the normal
 * end, a failure and Ctrl-C can all call it; every step runs even when another fails.
 */
export class Teardown {
  private readonly steps: { name: string; undo: () => Promise<void> | void }[] = [];
  private running?: Promise<void>;

  add(name: string, undo: () => Promise<void> | void): void {
    if (this.running) throw new Error(`teardown already running: cannot add ${name}`);
    this.steps.push({ name, undo });
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const { name, undo } of this.steps.reverse()) {
        try {
          await undo();
        } catch (err) {
          console.error(`teardown: ${name} failed: ${(err as Error).message}`);
        }
      }
    })();
    return this.running;
  }
}
