import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import {
  access,
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
} from 'node:fs/promises';
import path from 'node:path';
import type { StorageConfig } from '../config/config.js';
import { ObjectNotFoundError, type ObjectStore, StorageUnavailableError } from './object-store.js';

export type LocalStorageConfig = Pick<Extract<StorageConfig, { kind: 'local' }>, 'dir'>;

/** A key that could not name a file inside the store's folder. A bug in the caller, never retried. */
export class InvalidObjectKeyError extends Error {
  override name = 'InvalidObjectKeyError';
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`Invalid object key ${JSON.stringify(key)}: ${reason}`);
  }
}

/** Codes that mean "no object under this key" rather than "the disk is unwell". */
const MISSING_CODES = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

/**
 * {@link ObjectStore} over a local folder, the embedded default when no S3 endpoint is set. Key
 * segments become folders (`images/sha256/ab/abcd…` → `<dir>/images/sha256/ab/abcd…`). The content
 * type is not kept: readers know what they stored.
 */
/** How often a folder with an expiry is swept. */
const SWEEP_EVERY_MS = 60 * 60 * 1000;

export class LocalObjectStore implements ObjectStore {
  readonly kind = 'local' as const;
  readonly dir: string;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(config: LocalStorageConfig) {
    if (!config.dir) throw new Error('LocalObjectStore: dir must not be empty');
    this.dir = path.resolve(config.dir);
  }

  async init(): Promise<void> {
    await this.fs('init', '', () => mkdir(this.dir, { recursive: true }));
  }

  /**
   * Writes a temporary file next to the target and renames it into place. A rename within one
   * folder is atomic, so a reader sees either no file or the whole file, and when two writers race
   * on one key the last rename wins with a complete file.
   */
  async put(key: string, body: Buffer, _contentType: string): Promise<void> {
    const file = this.pathOf(key);
    // A leading dot keeps the temporary name out of the key space our code produces.
    const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomUUID()}.tmp`);
    await this.fs('put', key, async () => {
      try {
        const handle = await openCreating(temp);
        try {
          await handle.writeFile(body);
          // Flushed before the rename so that a crash cannot leave a complete name over an
          // empty file: an accepted job must still find its image after a restart.
          await handle.datasync();
        } finally {
          await handle.close();
        }
        await rename(temp, file);
      } catch (error) {
        await rm(temp, { force: true }).catch(() => undefined);
        throw error;
      }
    });
  }

  async writtenAt(key: string): Promise<number | undefined> {
    const file = this.pathOf(key);
    try {
      const stats = await stat(file);
      return stats.isFile() ? stats.mtimeMs : undefined;
    } catch (error) {
      if (MISSING_CODES.has(errorCode(error))) return undefined;
      throw this.unavailable('writtenAt', key, error);
    }
  }

  async get(key: string): Promise<Buffer> {
    const file = this.pathOf(key);
    try {
      return await readFile(file);
    } catch (error) {
      if (MISSING_CODES.has(errorCode(error))) throw new ObjectNotFoundError(key);
      throw this.unavailable('get', key, error);
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(key);
    await this.fs('delete', key, () => rm(file, { force: true }));
  }

  async ping(): Promise<void> {
    await this.fs('ping', '', () => access(this.dir, constants.R_OK | constants.W_OK));
  }

  async expire(prefix: string, days: number): Promise<'sweep'> {
    const sweep = () => this.sweep(prefix, Date.now() - days * 86_400_000).catch(() => undefined);
    clearInterval(this.sweeper);
    await sweep();
    this.sweeper = setInterval(sweep, SWEEP_EVERY_MS);
    this.sweeper.unref();
    return 'sweep';
  }

  /** Deletes files under `prefix` last written before `cutoffMs`; returns how many. */
  async sweep(prefix: string, cutoffMs: number): Promise<number> {
    const root = path.join(this.dir, ...prefix.split('/').filter(Boolean));
    let removed = 0;
    const walk = async (folder: string): Promise<void> => {
      const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
      for (const entry of entries) {
        const file = path.join(folder, entry.name);
        if (entry.isDirectory()) await walk(file);
        else if (entry.isFile() && (await stat(file)).mtimeMs < cutoffMs) {
          await rm(file, { force: true });
          removed++;
        }
      }
    };
    await walk(root);
    return removed;
  }

  async close(): Promise<void> {
    // Nothing is held open between calls but the sweep timer.
    clearInterval(this.sweeper);
  }

  /**
   * Maps a key to its file. Keys come from our own code, but a key that could leave the folder
   * would turn a bug into reading or overwriting any file the process can reach, so it is refused.
   */
  private pathOf(key: string): string {
    if (key.length === 0) throw new InvalidObjectKeyError(key, 'empty');
    if (key.includes('\0')) throw new InvalidObjectKeyError(key, 'contains NUL');
    if (key.includes('\\')) throw new InvalidObjectKeyError(key, 'contains a backslash');
    if (key.startsWith('/') || path.isAbsolute(key)) {
      throw new InvalidObjectKeyError(key, 'absolute path');
    }
    for (const segment of key.split('/')) {
      if (segment === '' || segment === '.' || segment === '..') {
        throw new InvalidObjectKeyError(key, `path segment "${segment}" is not allowed`);
      }
    }
    const file = path.join(this.dir, ...key.split('/'));
    // Belt and braces after the checks above: the result must sit strictly inside the folder.
    if (!file.startsWith(this.dir + path.sep)) {
      throw new InvalidObjectKeyError(key, 'resolves outside the storage folder');
    }
    return file;
  }

  private async fs<T>(operation: string, key: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw this.unavailable(operation, key, error);
    }
  }

  private unavailable(operation: string, key: string, error: unknown): StorageUnavailableError {
    const target = key ? `${key} in ${this.dir}` : this.dir;
    const reason = error instanceof Error ? error.message : String(error);
    return new StorageUnavailableError(`Local storage ${operation} ${target} failed: ${reason}`, {
      cause: error,
      reason: `local storage ${operation} failed (${errorCode(error) || 'error'})`,
    });
  }
}

/**
 * Opens a new file for writing, making its folder when it is missing. The folder is made only
 * then: after the first upload into each of the 256 folders of a prefix it exists, and a `mkdir`
 * per upload was one file-system call in seven on the request path.
 */
async function openCreating(file: string): Promise<FileHandle> {
  try {
    return await open(file, 'wx');
  } catch (error) {
    if (errorCode(error) !== 'ENOENT') throw error;
    await mkdir(path.dirname(file), { recursive: true });
    return open(file, 'wx');
  }
}

function errorCode(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? '';
}
