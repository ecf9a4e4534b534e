// Mutation testing (StrykerJS) of the code that gives training its meaning: the flow objective and sampler,
// the optimizers, the training loops, the data pipeline and the distributed layer. Not part of CI (hours on
// 2 cores); run `npm run mutate` for everything or one folder at a time, e.g.
//   npm run mutate -- --mutate 'src/flow/**/*.ts'
// How it works: Stryker copies the project to .stryker-tmp/, instruments the mutated files with every
// mutant at once (switched on by an environment variable), compiles once with tsc, records which test
// files reach which mutant, then runs only those files per mutant (the tap runner: node's test runner
// prints TAP). Tests that only reach code in child processes (the CLI tests) cannot be seen by that
// coverage, so mutants reached only that way count as "no coverage". Results: reports/mutation/.
// Scores and the survivors' verdicts are recorded in bench/RESULTS.md and docs/testing.md.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'tap',
  plugins: ['@stryker-mutator/tap-runner'],
  tap: {
    // Everything that exercises these folders in-process, except the slow end-to-end runs (dist-train:
    // minutes of child processes) and the GPU/backend suites, which do not reach them. Stryker runs a
    // mutant's covering files in this order and stops at the first failure, so the targeted, fast files
    // come first and the slow end-to-end ones last: a mutant a contract test kills costs seconds.
    testFiles: [
      'dist/test/optim-contracts.test.js', 'dist/test/checkpoint-meta.test.js', 'dist/test/zero-contracts.test.js',
      'dist/test/data-contracts.test.js',
      'dist/test/flow.test.js', 'dist/test/optim.test.js', 'dist/test/mup.test.js', 'dist/test/data.test.js',
      'dist/test/mds.test.js', 'dist/test/io.test.js', 'dist/test/torch-pt.test.js', 'dist/test/model-info.test.js',
      'dist/test/dist.test.js',
      // the one training loop, ZeRO-3, overlap, NCCL failures, the memory plan (ranks in-process; t2i-launch,
      // real processes, is left out like dist-train)
      'dist/test/zero3.test.js', 'dist/test/grad-hooks.test.js', 'dist/test/nccl-failures.test.js', 'dist/test/memory-plan.test.js',
      'dist/test/train-loop.test.js',
      'dist/test/t2i.test.js', 'dist/test/train.test.js', 'dist/test/dit-parity.test.js', 'dist/test/mmdit-parity.test.js',
      'dist/test/cli.test.js',
    ],
    nodeArgs: ['--test-reporter=tap'],
  },
  // dist/kernels (the wasm) is copied into the sandbox as built; only the TypeScript is rebuilt there
  buildCommand: 'tsc -p tsconfig.json',
  mutate: ['src/flow/**/*.ts', 'src/optim/**/*.ts', 'src/train/**/*.ts', 'src/data/**/*.ts', 'src/distributed/**/*.ts'],
  coverageAnalysis: 'perTest',
  concurrency: 2,
  // generous: the machine is shared, and a timed-out mutant would count as detected
  timeoutFactor: 3,
  timeoutMS: 20_000,
  disableTypeChecks: 'src/**/*.ts',
  ignorePatterns: ['build', 'reports', 'tmp', '.stryker-tmp'],
  reporters: ['clear-text', 'progress-append-only', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
