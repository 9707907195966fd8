#!/usr/bin/env node
// The `pibond` executable: registers tsx so the TypeScript CLI runs without a compile step.
import { register } from 'tsx/esm/api';

register();
await import('./pibond.ts');
