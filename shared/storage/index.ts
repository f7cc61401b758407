export { createObjectStore } from './create-object-store.js';
export { IMAGE_PREFIX, imageKey } from './image-key.js';
export {
  InvalidObjectKeyError,
  LocalObjectStore,
  type LocalStorageConfig,
} from './local.object-store.js';
export { ObjectNotFoundError, type ObjectStore, StorageUnavailableError } from './object-store.js';
export {
  createS3Client,
  S3ObjectStore,
  type S3ObjectStoreOptions,
  type S3StorageConfig,
} from './s3.object-store.js';
