import { inject } from 'vitest';
import type { TestServices } from './services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's Redis and S3, started by global-services.ts. */
    services: TestServices;
  }
}

/**
 * The Redis and S3 that this project's run started once (global-services.ts). They are shared by
 * every test file: keep to a key prefix and a bucket of your own (`uniquePrefix()`), and never stop
 * or restart them.
 */
export function sharedServices(): TestServices {
  return inject('services');
}
