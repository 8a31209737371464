// Checks HTTP exchanges against the API's OpenAPI document (api/openapi.json) with Ajv, a
// JSON Schema 2020-12 validator (what OpenAPI 3.1 schemas are). lib.mjs's api() runs every
// exchange of the e2e suite through check(): a path, a status or a body that the document does
// not describe fails the test that made it.
//   - the path must match one of the document's paths (an unknown path may only be answered
//     with an Error body, as 404 or 405), and the method one of its operations;
//   - the status must be one of the operation's responses, or fall under its "default";
//   - a JSON answer must validate against that response's schema;
//   - the JSON body of a request the daemon accepted (2xx) must validate against the
//     operation's request schema. (Rejected requests are bad on purpose.)
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import Ajv2020 from 'ajv/dist/2020.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const DOC_PATH = path.join(here, '..', '..', 'api', 'openapi.json');
export const doc = JSON.parse(fs.readFileSync(DOC_PATH, 'utf8'));

const ajv = new Ajv2020({strict: false});
ajv.addSchema(doc, 'openapi');
const compiled = new Map();
function validator(pointer) {
  if (!compiled.has(pointer)) compiled.set(pointer, ajv.compile({$ref: 'openapi#' + pointer}));
  return compiled.get(pointer);
}

// The document's paths as regular expressions ({id} matches one segment).
const templates = Object.keys(doc.paths).map((p) => ({
  p, re: new RegExp('^' + p.replace(/[.]/g, '\\.').replace(/\{[^}]+\}/g, '[^/]+') + '$'),
}));

export function findPath(pathname) {
  const t = templates.find((x) => x.re.test(pathname));
  return t ? t.p : null;
}

function esc(s) { return s.replace(/~/g, '~0').replace(/\//g, '~1'); }

// Returns a list of problems (empty when the exchange is as documented).
export function check({method, url, reqType, reqJson, status, resType, resJson}) {
  const problems = [];
  const pathname = new URL(url, 'http://x').pathname;
  const m = method.toLowerCase();
  const p = findPath(pathname);
  const isError = resJson && typeof resJson === 'object' && resJson.error;
  if (!p || !doc.paths[p][m]) {
    // not an API operation: only an Error answer is acceptable (the dashboard's files aside)
    if (m === 'get' && !pathname.startsWith('/v1/') && status === 200) return problems;
    if (!isError || ![404, 405].includes(status)) {
      problems.push(`${method} ${pathname} is not in the API document, yet answered ${status}`);
    } else {
      validate('/components/schemas/Error', resJson, `${method} ${pathname} ${status}`, problems);
    }
    return problems;
  }
  const op = doc.paths[p][m];
  const where = `${method} ${p} ${status}`;
  const r = op.responses[String(status)] || op.responses.default;
  if (!r) {
    problems.push(`${where}: status ${status} is not among the documented answers (${Object.keys(op.responses).join(', ')})`);
    return problems;
  }
  const ref = r.$ref ? r.$ref.slice(1) : null;
  const resp = ref ? ref.split('/').slice(1).reduce((o, k) => o[k], doc) : r;
  const ctype = (resType || '').split(';')[0].trim();
  if (resp.content && resJson !== undefined && resJson !== null) {
    const media = resp.content[ctype];
    if (!media) problems.push(`${where}: answered ${ctype}, documented ${Object.keys(resp.content).join(', ')}`);
    else if (media.schema) {
      const ptr = (ref || `/paths/${esc(p)}/${m}/responses/${status in op.responses ? status : 'default'}`) +
                  `/content/${esc(ctype)}/schema`;
      validate(ptr, resJson, where, problems);
    }
  }
  if (status >= 200 && status < 300 && op.requestBody && reqJson !== undefined &&
      (reqType || '').startsWith('application/json')) {
    const media = op.requestBody.content['application/json'];
    if (media) validate(`/paths/${esc(p)}/${m}/requestBody/content/application~1json/schema`, reqJson,
                        `${method} ${p} request`, problems);
  }
  return problems;
}

function validate(pointer, value, where, problems) {
  const v = validator(pointer);
  if (!v(value)) {
    problems.push(`${where}: ${ajv.errorsText(v.errors, {dataVar: 'body'})}`.slice(0, 600));
  }
}
