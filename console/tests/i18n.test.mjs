// The two message catalogs must carry the same keys, every message non-empty, and the same
// {placeholders}: a key missing in one language shows a raw key to its users.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const load = (name) => JSON.parse(readFileSync(new URL(`../src/i18n/${name}.json`, import.meta.url), 'utf8'));
const en = load('en');
const zh = load('zh');
const placeholders = (message) => [...message.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('en.json and zh.json have the same keys', () => {
  const enKeys = Object.keys(en).sort();
  const zhKeys = Object.keys(zh).sort();
  assert.deepEqual(enKeys.filter((k) => !(k in zh)), [], 'keys missing in zh.json');
  assert.deepEqual(zhKeys.filter((k) => !(k in en)), [], 'keys missing in en.json');
});

test('every message is a non-empty string with the same placeholders in both languages', () => {
  for (const key of Object.keys(en)) {
    assert.equal(typeof en[key], 'string', `en ${key}`);
    assert.ok(en[key].trim(), `en ${key} is empty`);
    assert.ok(String(zh[key] ?? '').trim(), `zh ${key} is empty`);
    assert.deepEqual(placeholders(zh[key]), placeholders(en[key]), `placeholders of ${key}`);
  }
});

test('the Chinese catalog is written in Chinese', () => {
  const han = /\p{Script=Han}/u;
  const chinese = Object.values(zh).filter((message) => han.test(message)).length;
  // Brand names and language names stay as they are; nearly everything else is translated.
  assert.ok(chinese / Object.keys(zh).length > 0.9, `only ${chinese} of ${Object.keys(zh).length} messages are Chinese`);
});
