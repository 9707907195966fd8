import { defineConfig } from 'vitest/config';

// Fast unit tests run by default; `slow` tests need a Docker engine (and build or boot an image).
// `npm test` runs them all; `npm run test:fast` leaves the slow ones out.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 10_000,
    tags: [
      { name: 'slow', description: 'needs Docker; builds or boots a real image', timeout: 60 * 60_000 },
    ],
  },
});
