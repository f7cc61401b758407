import type { TestProject } from 'vitest/node';
import { startServices } from './services.js';

/**
 * Vitest `globalSetup` of the projects that talk to Redis and S3: starts the services once for the
 * whole run of a project (instead of once per test file) and hands their coordinates to the test
 * files, which read them with `sharedServices()`. Tests that take a service down on purpose (the
 * chaos project) start private ones of their own.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { stop, ...services } = await startServices();
  project.provide('services', services);
  return stop;
}
