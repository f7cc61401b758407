import { defineConfig } from 'vitest/config';

// Four projects, cheapest first. Integration and end-to-end tests talk to a real Redis and a real
// S3 protocol server, started once per run of the project (test/support/global-services.ts);
// end-to-end tests also start real API and worker processes, so their files run one at a time.
// The chaos project starts and kills its own Redis and S3 in each scenario.
const SHARED_SERVICES = ['test/support/global-services.ts'];
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: SHARED_SERVICES,
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          globalSetup: SHARED_SERVICES,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: 'chaos',
          include: ['test/chaos/**/*.test.ts'],
          fileParallelism: false,
          // After every other project: fault scenarios and the soak want the cores to themselves.
          sequence: { groupOrder: 2 },
          testTimeout: 600_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
