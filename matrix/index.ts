/**
 * The kernel matrix (see run.ts): one corpus on the host and VM kernels, judged by the spec,
 * reported. run.ts runs it, report.ts models the report, markdown.ts / html.ts render it,
 * write.ts writes the files. The CLI is cli/matrix.ts.
 */
export * from "./run.ts";
export * from "./report.ts";
export { renderMarkdown } from "./markdown.ts";
export { renderHtml } from "./html.ts";
export { writeReport } from "./write.ts";
export { fromResultJson, mergeMatrix, readMatrix, MatrixMergeError } from "./merge.ts";
