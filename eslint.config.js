// @ts-check
import js from '@eslint/js';
import vitest from '@vitest/eslint-plugin';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'out/', '.cache/', '.scratch/', '**/*.bundle.js'] },
  js.configs.recommended,
  // Type-checked: floating promises, unsafe `any` flowing out of JSON and dockerode, awaits of
  // non-promises are the bugs a build tool that juggles containers and streams would ship.
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js', 'scripts/*.mjs'] }, tsconfigRootDir: import.meta.dirname },
      globals: { process: 'readonly', console: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', URL: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      // `async` without an await is how a step's verify(), an overlay's render() or a fake
      // implements an interface that returns promises: a throw in it still becomes a rejection.
      '@typescript-eslint/require-await': 'off',
      // An abort passes on whatever reason its caller gave (an Error by our convention).
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true }],
    },
  },
  // The zx scripts run inside the builder container and the test bed; they are plain JavaScript
  // outside the TypeScript project, so they get the untyped rules only.
  { files: ['**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['test/**'],
    plugins: { vitest },
    rules: {
      ...vitest.configs.recommended.rules,
      // vitest's expect(value, message): the message says where to look when a slow test fails.
      'vitest/valid-expect': ['error', { maxArgs: 2 }],
      // Property tests assert inside fast-check's property (validatesCleanly throws).
      'vitest/expect-expect': ['error', { assertFunctionNames: ['expect', 'expect.*', 'fc.assert', 'validatesCleanly'] }],
      // expect.any() and friends are typed `any`: assigning them into an expected shape is the point.
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
);
