// A frontend's round through the Todo API, typed from the live OpenAPI document:
//   npx openapi-typescript http://127.0.0.1:8000/openapi.json --default-non-nullable false -o schema.d.ts
// (the flag keeps fields that have a default, such as `description`, optional in request bodies)
// tests/system/test_typed_client.py generates the types, compiles this with `tsc --strict` and runs it
// against a live server (API_URL, USER_ID, TOKEN); it prints what each step saw as one JSON line.
// Tasks first (create, list, conditional update, toggle, delete), then lists and subtasks.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

declare const process: { env: Record<string, string | undefined> }; // Node's, without @types/node

type Task = components["schemas"]["TaskRead"];
type TaskList = components["schemas"]["ListRead"];
type ListCount = components["schemas"]["ListCount"];
type ErrorCode = components["schemas"]["ErrorBody"]["code"];

// `error.code` is a closed union, so a typo is a compile error and a switch can be exhaustive.
// @ts-expect-error: "NOT_A_CODE" is not one of the API's codes
const typo: ErrorCode = "NOT_A_CODE";
void typo;

function advice(code: ErrorCode): string {
  switch (code) {
    case "UNAUTHORIZED":
      return "sign in again";
    case "PRECONDITION_FAILED":
      return "reload: it changed elsewhere";
    case "NOT_FOUND":
      return "it is gone";
    case "VALIDATION_ERROR":
      return "fix the form";
    default:
      return "try again later";
  }
}

const api = createClient<paths>({
  baseUrl: process.env.API_URL,
  headers: { Authorization: `Bearer ${process.env.TOKEN}` },
});
const path = { user_id: process.env.USER_ID ?? "" };
const seen: Record<string, unknown> = {};

// create
const created = await api.POST("/api/{user_id}/tasks", {
  params: { path },
  body: { title: "Buy milk", description: "2 litres" },
});
if (!created.data) throw new Error(`create failed: ${created.error?.error.code}`);
const task: Task = created.data.data;
const item = { path: { ...path, task_id: task.id } };
seen.created = { status: created.response.status, title: task.title, etag: created.response.headers.get("ETag") };

// list
const listed = await api.GET("/api/{user_id}/tasks", { params: { path, query: { completed: "false", limit: 10 } } });
seen.listed = listed.data?.data.map((t) => t.title);

// get, keeping the ETag for a conditional write
const read = await api.GET("/api/{user_id}/tasks/{task_id}", { params: item });
const etag = read.response.headers.get("ETag") ?? "";

// update, only if nobody changed it since
const updated = await api.PATCH("/api/{user_id}/tasks/{task_id}", {
  params: { ...item, header: { "If-Match": etag } },
  body: { title: "Buy oat milk" },
});
seen.updated = updated.data?.data.title;

// the same stale ETag again: a 412 the client can narrow on
const stale = await api.PATCH("/api/{user_id}/tasks/{task_id}", {
  params: { ...item, header: { "If-Match": etag } },
  body: { title: "lost update" },
});
if (stale.error) seen.stale = { code: stale.error.error.code, advice: advice(stale.error.error.code) };

// toggle: no body flips `completed`
const toggled = await api.PATCH("/api/{user_id}/tasks/{task_id}/complete", { params: item });
seen.toggled = toggled.data?.data.completed;

// validation errors name the field
const blank = await api.POST("/api/{user_id}/tasks", { params: { path }, body: { title: " " } });
seen.blank = blank.error?.error.details;

// delete answers the task as it was; afterwards it is a 404
const deleted = await api.DELETE("/api/{user_id}/tasks/{task_id}", { params: item });
seen.deleted = deleted.data?.data.id === task.id;
const gone = await api.GET("/api/{user_id}/tasks/{task_id}", { params: item });
if (gone.error) seen.gone = advice(gone.error.error.code);

// a list, a task in it, and subtasks under that task (a subtask goes in its parent's list)
const madeList = await api.POST("/api/{user_id}/lists", { params: { path }, body: { name: "Party" } });
if (!madeList.data) throw new Error(`list create failed: ${madeList.error?.error.code}`);
const list: TaskList = madeList.data.data;
const create = async (body: components["schemas"]["TaskCreate"]): Promise<Task> => {
  const made = await api.POST("/api/{user_id}/tasks", { params: { path }, body });
  if (!made.data) throw new Error(`create failed: ${made.error?.error.code}`);
  return made.data.data;
};
const cake = await create({ title: "Bake a cake", list_id: list.id });
const flour = await create({ title: "Buy flour", parent_id: cake.id });
const candles = await create({ title: "Buy candles", list_id: list.id });
seen.subtask = { list: flour.list_id === list.id, parent: flour.parent_id === cake.id };

// move a top-level task of the list right after the subtask: it becomes the cake's subtask too
const moved = await api.POST("/api/{user_id}/tasks/{task_id}/move", {
  params: { path: { ...path, task_id: candles.id } },
  body: { after: flour.id },
});
seen.moved = { status: moved.response.status, parent: moved.data?.data.parent_id === cake.id };

// structure changes through move only: an update that names a list is a compile error, and a 422
// @ts-expect-error: list_id is not a field of TaskUpdate
const relist: components["schemas"]["TaskUpdate"] = { list_id: null };
const restructured = await api.PATCH("/api/{user_id}/tasks/{task_id}", {
  params: { path: { ...path, task_id: flour.id } },
  body: relist,
});
seen.restructured = restructured.error?.error.details;

// the list in tree order: each task followed by its subtasks
const tree = await api.GET("/api/{user_id}/tasks", {
  params: { path, query: { sort: "position", list_id: list.id } },
});
seen.tree = tree.data?.data.map((t) => (t.parent_id === null ? t.title : `- ${t.title}`));

// completing the parent completes its subtasks
await api.PATCH("/api/{user_id}/tasks/{task_id}/complete", {
  params: { path: { ...path, task_id: cake.id } },
  body: { completed: true },
});

// stats count each list, the Inbox (list_id null) first
const stats = await api.GET("/api/{user_id}/tasks/stats", { params: { path } });
const counts: ListCount[] = stats.data?.data.lists ?? [];
seen.lists = counts.map((c) => ({ list: c.list_id === null ? "Inbox" : c.list_id === list.id ? list.name : c.list_id, active: c.active, completed: c.completed }));

// deleting the list deletes its tasks, and says how many
const listDeleted = await api.DELETE("/api/{user_id}/lists/{list_id}", { params: { path: { ...path, list_id: list.id } } });
seen.deletedList = listDeleted.data?.meta.deleted_tasks;

console.log(JSON.stringify(seen));
