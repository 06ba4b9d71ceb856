import { buildTestImages, imageExists } from './test-images';

/**
 * Runs once before the e2e tier. scripts/test.sh has already started
 * Postgres, Redis and the Docker engine and built the session images; this
 * only checks that, and builds the tiny failure-path images.
 */
export default async function globalSetup(): Promise<void> {
  for (const image of [process.env.TERMINAL_IMAGE ?? 'berth/terminal:latest', process.env.BROWSER_IMAGE ?? 'berth/browser:latest']) {
    if (!imageExists(image)) throw new Error(`Session image ${image} is missing: run scripts/build-images.sh (npm test does it for you).`);
  }
  buildTestImages();
}
