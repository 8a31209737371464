# Writes api/openapi.json, the API description served at GET /v1/openapi.json. Edit the
# document here and run it again (python3 tools/openapi_gen.py); tests/e2e/openapi.test.mjs
# checks the result against the routes and the e2e suite checks every exchange against it.
import json
def ref(n): return {"$ref": "#/components/schemas/" + n}
def resp(desc, schema=None, ctype="application/json"):
    r = {"description": desc}
    if schema is not None: r["content"] = {ctype: {"schema": schema}}
    return r
ERR = resp("An error: what was wrong and, where there is one, the JSON path of the value at fault.", ref("Error"))
def errs(*codes):
    d = {}
    for c in codes: d[str(c)] = {"$ref": "#/components/responses/Error"}
    return d
idp = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "A job id (j_000001)."}
dsid = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "A data set's id or name."}
def q(name, desc, schema):
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": schema}
i64 = {"type": "integer", "minimum": 0}
num = {"type": ["number", "null"]}
numarr = {"type": "array", "items": num}
body = lambda s, desc: {"required": True, "description": desc, "content": {"application/json": {"schema": s}}}
job_ops = {}
S = {
 "Error": {"type": "object", "required": ["error"], "properties": {
   "error": {"type": "object", "required": ["code", "message"], "properties": {
     "code": {"type": "string", "description": "invalid_argument, unauthenticated, not_found, conflict, unprocessable, too_large, unsupported_media_type, misdirected, forbidden, unavailable, internal, …"},
     "message": {"type": "string"},
     "field": {"type": ["string", "null"], "description": "JSON path of the offending value, when there is one"}}},
   "errors": {"type": "array", "description": "Every independent error of a rejected job spec (at most 64).",
              "items": {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}, "field": {"type": ["string", "null"]}}}}}},
 "JobSpec": {"type": "object", "description": "A job spec (docs/JOBSPEC.md): model, data, length and ds_config.",
             "required": ["model", "data", "ds_config"],
             "properties": {"name": {"type": "string"}, "seed": {"type": "integer"}, "model": {"type": "object"},
                            "loss": {"type": "string"}, "data": {"type": "object"}, "steps": {"type": "integer"},
                            "epochs": {"type": "integer"}, "validation": {"type": "object"}, "checkpoint": {"type": "object"},
                            "threads": {"type": "integer"}, "param_groups": {"type": "array"}, "resume_from": {"type": "object"},
                            "world_size": {"type": "integer", "minimum": 1, "maximum": 256,
                                           "description": "Ranks of a data-parallel job (Open MPI); enters the batch arithmetic."},
                            "lr_finder": {"type": "object", "properties": {"stop_factor": {"type": "number"}}},
                            "ds_config": {"type": "object"}}},
 "Job": {"type": "object", "required": ["id", "name", "state", "created_at", "step", "total_steps", "lr", "spec"],
         "properties": {
           "id": {"type": "string"}, "name": {"type": "string"},
           "state": {"enum": ["queued", "running", "paused", "completed", "failed", "cancelled", "stopped"]},
           "kind": {"enum": ["train", "lr_finder"]},
           "created_at": {"type": "string"}, "started_at": {"type": ["string", "null"]}, "finished_at": {"type": ["string", "null"]},
           "step": {"type": "integer"}, "total_steps": {"type": "integer"}, "epoch": {"type": "integer"},
           "loss": num, "lr": numarr, "samples_per_sec": num, "eta_s": num,
           "last_checkpoint_step": {"type": ["integer", "null"]}, "error": {"type": ["string", "null"]},
           "warnings": {"type": "array", "items": {"type": "string"}},
           "spec": {"type": "object"}, "resume_from": {"type": ["object", "null"]},
           "val_loss": num, "val_acc": num,
           "sweep": {"type": ["string", "null"], "description": "The sweep the job is a trial of."},
           "trial": {"type": ["integer", "null"], "description": "Its trial index there."}}},
 "JobList": {"type": "object", "required": ["jobs", "total"], "properties": {"jobs": {"type": "array", "items": ref("Job")}, "total": {"type": "integer"}}},
 "Metrics": {"type": "object", "required": ["step", "loss", "lr"], "properties": {
   "step": {"type": "array", "items": {"type": "integer"}}, "loss": numarr, "lr": {"type": "array", "items": numarr},
   "grad_norm": numarr, "time": numarr, "val_step": {"type": "array", "items": {"type": "integer"}}, "val_loss": numarr, "val_acc": numarr,
   "full_resolution_from": {"type": "integer", "description": "Only for a job with metrics.full_resolution_steps whose older rows were dropped: every step from this one on is in the answer; before it, the summary pyramid's points (first, last, lowest- and highest-loss row of each 2048 steps)."},
   "fp16": {"type": "object", "required": ["step", "loss_scale", "skipped"], "description": "fp16 jobs: loss-scale events (a changed scale, a skipped step, the first step) of the range, led by the one in force at from.", "properties": {
     "step": {"type": "array", "items": {"type": "integer"}}, "loss_scale": numarr, "skipped": {"type": "array", "items": {"type": "integer"}, "description": "Overflowed (skipped) steps of the range."}}}}},
 "Checkpoints": {"type": "object", "required": ["checkpoints"], "properties": {"checkpoints": {"type": "array", "items": {
   "type": "object", "required": ["step", "bytes"], "properties": {"step": {"type": "integer"}, "created_at": {"type": "string"}, "bytes": {"type": "integer"}, "loss": num}}}}},
 "Weights": {"type": "object", "required": ["step", "tensors"], "properties": {"step": {"type": "integer"}, "tensors": {"type": "array", "items": {
   "type": "object", "required": ["name", "shape", "data"], "properties": {"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
   "data": {"type": "array", "description": "The values, nested as the shape says (row-major).", "items": {"type": ["number", "null", "array"]}}}}},
   "input_stats": {"type": ["object", "null"]}}},
 "PredictRequest": {"type": "object", "required": ["inputs"], "properties": {"inputs": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
   "step": {"type": "integer"}, "normalized": {"type": "boolean"}}},
 "PredictResponse": {"type": "object", "required": ["outputs"], "properties": {"outputs": {"type": "array", "items": numarr}}},
 "Preview": {"type": "object", "required": ["step", "lr"], "properties": {"step": {"type": "array", "items": {"type": "integer"}}, "lr": {"type": "array", "items": numarr},
   "momentum": {"type": "array", "items": numarr}}},
 "PreviewRequest": {"type": "object", "properties": {"ds_config": {"type": "object"}, "steps": {"type": "integer"}, "max_points": {"type": "integer"},
   "param_groups": {"type": "array", "items": {"type": "object", "properties": {"lr": {"type": "number"}}}}}},
 "Dataset": {"type": "object", "required": ["id", "name"], "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "kind": {"type": "string"},
   "rows": {"type": "integer"}, "columns": {"type": "array", "items": {"type": "string"}}, "bytes": {"type": "integer"}, "created_at": {"type": "string"}}},
 "DatasetList": {"type": "object", "required": ["datasets"], "properties": {"datasets": {"type": "array", "items": ref("Dataset")}}},
 "Health": {"type": "object", "required": ["status"], "properties": {"status": {"enum": ["ok", "degraded", "warning", "stopping"]}, "version": {"type": "string"},
   "uptime_s": {"type": "number"}, "jobs": {"type": "object"}}},
 "LrFinderRequest": {"type": "object", "required": ["job"], "properties": {"job": ref("JobSpec"), "min_lr": {"type": "number", "exclusiveMinimum": 0},
   "max_lr": {"type": "number", "exclusiveMinimum": 0}, "steps": {"type": "integer", "minimum": 5, "maximum": 100000},
   "stop_factor": {"type": "number", "exclusiveMinimum": 1}, "mode": {"enum": ["exponential", "linear"]}}},
 "LrFinderReport": {"type": "object", "required": ["lr", "loss", "smoothed", "suggestions", "stopped_early"], "properties": {
   "lr": numarr, "loss": numarr, "smoothed": numarr,
   "suggestions": {"type": "object", "required": ["steepest", "valley", "minimum_div_10"], "properties": {"steepest": num, "valley": num, "minimum_div_10": num}},
   "stopped_early": {"type": "boolean"}, "diverged_at": {"type": ["integer", "null"]}, "from": {"type": "integer"}, "to": {"type": "integer"}}},
}
job200 = {"200": resp("The job object.", ref("Job"))}
paths = {
 "/healthz": {"get": {"summary": "Liveness and readiness", "security": [], "responses": {"200": resp("Healthy.", ref("Health")), "503": resp("Degraded or stopping.", ref("Health"))}}},
 "/metrics": {"get": {"summary": "Prometheus exposition", "responses": {"200": resp("Text format 0.0.4.", {"type": "string"}, "text/plain"), **errs(401)}}},
 "/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": resp("OpenAPI 3.1.", {"type": "object"}), **errs(401)}}},
 "/v1/jobs": {
   "post": {"summary": "Validate a job spec and queue it", "requestBody": body(ref("JobSpec"), "A job spec."),
            "responses": {"201": resp("Queued.", ref("Job")), **errs(400, 401, 403, 413, 415, 421, 422, 503)}},
   "get": {"summary": "List jobs, newest first", "parameters": [q("state", "Only jobs in this state.", {"type": "string"}), q("limit", "At most this many.", {"type": "integer"}), q("offset", "Skip this many.", {"type": "integer"})],
           "responses": {"200": resp("The jobs.", ref("JobList")), **errs(400, 401, 503)}}},
 "/v1/jobs/{id}": {"parameters": [idp],
   "get": {"summary": "One job", "responses": {**job200, **errs(401, 404, 503)}},
   "delete": {"summary": "Remove a finished job and all its data", "responses": {"204": {"description": "Removed."}, **errs(401, 404, 409, 503)}}},
 "/v1/jobs/{id}/pause": {"parameters": [idp], "post": {"summary": "Checkpoint and pause", "responses": {**job200, **errs(401, 403, 404, 409, 415, 503)}}},
 "/v1/jobs/{id}/resume": {"parameters": [idp], "post": {"summary": "Queue again from the latest checkpoint", "responses": {**job200, **errs(401, 403, 404, 409, 415, 503)}}},
 "/v1/jobs/{id}/cancel": {"parameters": [idp], "post": {"summary": "Stop for good", "responses": {**job200, **errs(401, 403, 404, 409, 415, 503)}}},
 "/v1/jobs/{id}/metrics": {"parameters": [idp, q("from", "First step.", i64), q("to", "Last step.", {"type": "integer"}), q("max_points", "Downsample to at most this many rows.", i64), q("format", "json (default) or csv.", {"enum": ["json", "csv"]})],
   "get": {"summary": "Step history, columnar (or CSV)", "responses": {"200": {"description": "The metrics.", "content": {"application/json": {"schema": ref("Metrics")}, "text/csv": {"schema": {"type": "string"}}}}, **errs(400, 401, 404, 503)}}},
 "/v1/jobs/{id}/checkpoints": {"parameters": [idp], "get": {"summary": "The job's checkpoints", "responses": {"200": resp("Checkpoints.", ref("Checkpoints")), **errs(401, 404, 503)}}},
 "/v1/jobs/{id}/weights": {"parameters": [idp, q("step", "A checkpoint's step (latest if absent).", i64)], "get": {"summary": "The model's tensors at a checkpoint", "responses": {"200": resp("Tensors; every float reads back to the same bits.", ref("Weights")), **errs(400, 401, 404, 409, 503)}}},
 "/v1/jobs/{id}/predict": {"parameters": [idp], "post": {"summary": "Run inputs through the weights", "requestBody": body(ref("PredictRequest"), "Input rows."), "responses": {"200": resp("Outputs.", ref("PredictResponse")), **errs(400, 401, 403, 404, 409, 413, 415, 503)}}},
 "/v1/jobs/{id}/lr_finder": {"parameters": [idp, q("from", "First step.", i64), q("to", "Last step.", {"type": "integer"})], "get": {"summary": "The learning-rate finder's reading of the job", "responses": {"200": resp("The report (docs/EXPERIMENTS.md).", ref("LrFinderReport")), **errs(400, 401, 404, 503)}}},
 "/v1/jobs/{id}/events": {"parameters": [idp, q("access_token", "The token, for EventSource clients.", {"type": "string"})], "get": {"summary": "Server-Sent Events of one job", "responses": {"200": resp("state, progress and checkpoint events.", {"type": "string"}, "text/event-stream"), **errs(401, 404, 503)}}},
 "/v1/events": {"parameters": [q("access_token", "The token, for EventSource clients.", {"type": "string"})], "get": {"summary": "Server-Sent Events of every job", "responses": {"200": resp("Events.", {"type": "string"}, "text/event-stream"), **errs(401, 503)}}},
 "/v1/datasets": {
   "post": {"summary": "Upload a CSV data set", "parameters": [q("name", "The data set's name.", {"type": "string"})], "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
            "responses": {"201": resp("Stored.", ref("Dataset")), **errs(400, 401, 403, 409, 413, 415, 503)}},
   "get": {"summary": "List data sets", "responses": {"200": resp("Data sets.", ref("DatasetList")), **errs(401, 503)}}},
 "/v1/datasets/{id}": {"parameters": [dsid],
   "get": {"summary": "One data set", "responses": {"200": resp("The data set.", ref("Dataset")), **errs(401, 404, 503)}},
   "delete": {"summary": "Remove a data set (409 while a queued, running or paused job uses it)", "responses": {"204": {"description": "Removed."}, **errs(401, 404, 409, 503)}}},
 "/v1/schedules/preview": {"post": {"summary": "The learning rates a config would use, without training", "parameters": [q("format", "json (default) or csv.", {"enum": ["json", "csv"]})],
   "requestBody": body(ref("PreviewRequest"), "A preview body, a job spec or a bare ds_config."),
   "responses": {"200": {"description": "The schedule.", "content": {"application/json": {"schema": ref("Preview")}, "text/csv": {"schema": {"type": "string"}}}}, **errs(400, 401, 403, 413, 415)}}},
 "/v1/lr_finder": {"post": {"summary": "Start a learning-rate sweep of a job spec", "requestBody": body(ref("LrFinderRequest"), "A finder request."),
   "responses": {"201": resp("The sweep's job (kind lr_finder).", ref("Job")), **errs(400, 401, 403, 413, 415, 422, 503)}}},
}
# ---- sweeps (docs/EXPERIMENTS.md) ----
swid = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "A sweep id (s_000001)."}
S["SweepRequest"] = {"type": "object", "required": ["base", "parameters"], "properties": {
  "name": {"type": "string"}, "base": ref("JobSpec"),
  "parameters": {"type": "object", "description": "JSON paths of the spec to the values to try: a list, {\"uniform\": [lo, hi]} or {\"log_uniform\": [lo, hi]}.",
                 "additionalProperties": {"oneOf": [{"type": "array"}, {"type": "object"}]}},
  "search": {"enum": ["grid", "random"]}, "trials": {"type": "integer", "minimum": 1, "maximum": 1000},
  "metric": {"enum": ["val_loss", "val_acc", "loss"]}, "mode": {"enum": ["min", "max"]},
  "max_concurrent": {"type": "integer", "minimum": 1}, "seed": {"type": "integer"},
  "early_stopping": {"type": "object", "required": ["type", "min_steps"], "properties": {
    "type": {"enum": ["asha"]}, "min_steps": {"type": "integer", "minimum": 1}, "reduction_factor": {"type": "integer", "minimum": 2}}}}}
S["SweepTrial"] = {"type": "object", "required": ["trial", "params", "job", "state", "metric"], "properties": {
  "trial": {"type": "integer"}, "params": {"type": "object"}, "job": {"type": ["string", "null"]},
  "state": {"type": "string", "description": "The job's state, or pending (not started yet) or not_started (its values make a job that cannot run: see error)."},
  "metric": num, "step": {"type": "integer"}, "stopped_at": {"type": ["integer", "null"]}, "error": {"type": ["string", "null"]}}}
S["Sweep"] = {"type": "object", "required": ["id", "name", "state", "metric", "mode", "trial_count", "best"], "properties": {
  "id": {"type": "string"}, "name": {"type": "string"}, "state": {"enum": ["running", "completed", "cancelled"]},
  "created_at": {"type": "string"}, "finished_at": {"type": ["string", "null"]},
  "search": {"enum": ["grid", "random"]}, "metric": {"type": "string"}, "mode": {"enum": ["min", "max"]},
  "max_concurrent": {"type": "integer"}, "early_stopping": {"type": ["object", "null"]},
  "trial_count": {"type": "integer"}, "trials_started": {"type": "integer"},
  "best": {"oneOf": [ref("SweepTrial"), {"type": "null"}]},
  "trials": {"type": "array", "items": ref("SweepTrial"), "description": "Completed trials first, each group best first."},
  "rungs": {"type": "array", "items": {"type": "object", "required": ["seq", "step", "trial", "value", "continues"], "properties": {
    "seq": {"type": "integer"}, "step": {"type": "integer"}, "trial": {"type": "integer"}, "value": num, "continues": {"type": "boolean"}}}},
  "spec": {"type": "object"}}}
S["SweepList"] = {"type": "object", "required": ["sweeps", "total"], "properties": {"sweeps": {"type": "array", "items": ref("Sweep")}, "total": {"type": "integer"}}}
paths["/v1/sweeps"] = {
  "post": {"summary": "Start a sweep: trials over JSON paths of a job spec, with ASHA early stopping", "requestBody": body(ref("SweepRequest"), "A sweep."),
           "responses": {"201": resp("The sweep with every trial it will run.", ref("Sweep")), **errs(400, 401, 403, 413, 415, 503)}},
  "get": {"summary": "List sweeps, newest first", "responses": {"200": resp("The sweeps (without their trials).", ref("SweepList")), **errs(401, 503)}}}
paths["/v1/sweeps/{id}"] = {"parameters": [swid],
  "get": {"summary": "One sweep: its trials best first, the best trial and ASHA's decisions", "responses": {"200": resp("The sweep.", ref("Sweep")), **errs(401, 404, 503)}},
  "delete": {"summary": "Remove an ended sweep with its trial jobs", "responses": {"204": {"description": "Removed."}, **errs(401, 404, 409, 503)}}}
paths["/v1/sweeps/{id}/cancel"] = {"parameters": [swid], "post": {"summary": "Cancel its queued and running trials and start no more", "responses": {"200": resp("The sweep.", ref("Sweep")), **errs(401, 403, 404, 409, 415, 503)}}}
# ---- Generation (model gpt) and text data sets: docs/API.md "Additions (second round)" ----
S["GenerateRequest"] = {"type": "object", "required": ["prompt"], "additionalProperties": False, "properties": {
  "prompt": {"type": "string", "description": "The start; every character must be in the job's vocabulary."},
  "max_tokens": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "Default 200."},
  "temperature": {"type": "number", "minimum": 0, "maximum": 100, "description": "0 is greedy; default 1."},
  "top_k": {"type": "integer", "minimum": 0, "description": "Sample among the k likeliest tokens; 0 (default) all."},
  "seed": {"type": "integer", "minimum": 0, "description": "Same seed, checkpoint and request: same text."},
  "step": {"type": "integer", "minimum": 0, "description": "A checkpoint's step (latest if absent)."}}}
S["GenerateResponse"] = {"type": "object", "required": ["step", "text", "tokens"], "properties": {
  "step": {"type": "integer"}, "text": {"type": "string", "description": "The generated text, without the prompt."},
  "tokens": {"type": "integer"}}}
S["Dataset"]["properties"]["characters"] = {"type": "integer", "description": "A text corpus's characters (kind text)."}
S["Dataset"]["properties"]["vocabulary"] = {"type": ["object", "null"], "description": "A text corpus's char vocabulary (kind text), as its jobs show it in spec.data.vocabulary: {tokenizer, size, tokens} (the list of data sets leaves tokens out); null for a corpus stored before schema 8. Absent for CSV data sets.",
  "properties": {"tokenizer": {"type": "string", "enum": ["char"]}, "size": {"type": "integer", "minimum": 1}, "tokens": {"type": "array", "items": {"type": "string"}}}}
paths["/v1/jobs/{id}/generate"] = {"parameters": [idp], "post": {"summary": "Sample text from a gpt job's checkpoint",
  "requestBody": body(ref("GenerateRequest"), "What to generate."),
  "responses": {"200": {"description": "The text; with Accept: text/event-stream, `token` events as tokens are made, then `done` with the answer.",
                        "content": {"application/json": {"schema": ref("GenerateResponse")}, "text/event-stream": {"schema": {"type": "string"}}}},
                **errs(400, 401, 403, 404, 413, 415, 503)}}}
paths["/v1/datasets"]["post"]["requestBody"]["content"]["text/plain"] = {"schema": {"type": "string", "description": "A text corpus (UTF-8) for data type text."}}
# Scheduling: priority, preemption, run-time and stall limits, tags and notes (docs/API.md,
# "Scheduling").
S["Job"]["properties"].update({
 "preempted": {"type": "boolean", "description": "Queued again after a job of higher priority took its worker; false once it runs."},
 "restarts": {"type": "integer", "minimum": 0, "description": "Restarts after stalls since the daemon started."},
 "world_size": {"type": "integer", "minimum": 1, "description": "Ranks the job trains on (the spec's world_size; more than 1 runs under mpirun)."},
 "rank_step_ms": {"type": ["array", "null"], "items": {"type": ["number", "null"]}, "description": "A running job of several ranks: each rank's milliseconds per step outside the gradient exchange over the last half second; null otherwise."}})
S["JobSpec"]["properties"].update({
 "priority": {"type": "integer"}, "preemptible": {"type": "boolean"},
 "max_runtime_s": {"type": "number", "exclusiveMinimum": 0}, "stall_timeout_s": {"type": "number", "exclusiveMinimum": 0},
 "max_restarts": {"type": "integer", "minimum": 0}, "tags": {"type": "array", "items": {"type": "string"}}, "notes": {"type": "string"}})
S["JobPatch"] = {"type": "object", "description": "The labels to change; every other field stays.", "minProperties": 1,
 "properties": {"priority": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}, "notes": {"type": "string"}, "name": {"type": "string"}}}
paths["/v1/jobs"]["get"]["parameters"] += [q("tag", "Only jobs with this tag.", {"type": "string"}),
                                           q("q", "Only jobs whose name or notes contain this text.", {"type": "string"})]
paths["/v1/jobs/{id}"]["patch"] = {"summary": "Change a job's priority, tags, notes or name",
 "requestBody": body(ref("JobPatch"), "Any of priority, tags, notes, name."),
 "responses": {**job200, **errs(400, 401, 403, 404, 413, 415, 503)}}

# Checkpoint retention: pins and the best by a metric (docs/API.md, "Checkpoint retention").
_ck = S["Checkpoints"]["properties"]["checkpoints"]["items"]["properties"]
_ck.update({"pinned": {"type": "boolean", "description": "Pinned: never removed by retention."},
            "best": {"type": "boolean", "description": "Among the k best by the job's checkpoint.keep_best."}})
S["Checkpoint"] = {"type": "object", "required": ["step", "bytes", "pinned", "best"], "properties": dict(_ck)}
stepp = {"name": "step", "in": "path", "required": True, "schema": {"type": "string"}, "description": "A checkpoint's step."}
for _verb, _what in (("pin", "Pin a checkpoint: retention never removes it"), ("unpin", "Unpin a checkpoint: retention may remove it again")):
    paths["/v1/jobs/{id}/checkpoints/{step}/" + _verb] = {"parameters": [idp, stepp], "post": {"summary": _what,
        "responses": {"200": resp("The checkpoint.", ref("Checkpoint")), **errs(400, 401, 403, 404, 415, 503)}}}

doc = {"openapi": "3.1.0",
       "info": {"title": "anneald", "version": "2", "description": "The HTTP API of anneald, the training daemon (docs/API.md). Every error answer has the Error body."},
       "servers": [{"url": "http://127.0.0.1:8470"}],
       "security": [{"bearer": []}, {}],
       "paths": paths,
       "components": {"schemas": S, "responses": {"Error": ERR},
                      "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Required with --token-file (and off loopback)."}}}}
for p, item in paths.items():
    for m, op in item.items():
        if m == "parameters": continue
        op["operationId"] = (m + p.replace("/v1", "").replace("{id}", "by_id").replace("{step}", "by_step").replace("/", "_").replace(".", "_")).strip("_")
import os
json.dump(doc, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api", "openapi.json"), "w"), indent=1)
print("ok", len(json.dumps(doc)))
