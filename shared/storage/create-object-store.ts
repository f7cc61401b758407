import type { StorageConfig } from '../config/config.js';
import { LocalObjectStore } from './local.object-store.js';
import type { ObjectStore } from './object-store.js';
import { S3ObjectStore } from './s3.object-store.js';

/** Builds the store the configuration names. The caller still runs `init()` before first use. */
export function createObjectStore(config: StorageConfig): ObjectStore {
  switch (config.kind) {
    case 's3':
      return new S3ObjectStore(config);
    case 'local':
      return new LocalObjectStore(config);
    default: {
      // A new storage kind in StorageConfig must be handled here: the compiler stops at this line.
      const unknownKind: never = config;
      throw new Error(`Unknown storage kind ${JSON.stringify(unknownKind)}`);
    }
  }
}
