// Opens the real ComfyUI frontend in Debian's chromium (driven by playwright-core),
// loads each workflow, reports missing node types and broken links, queues one
// workflow with the Run button and waits until its output image is shown, then queues
// every workflow as the frontend builds it (app.graphToPrompt, POST /prompt); the
// caller waits for those results.
// Usage: node load_workflows.mjs <url> <screenshot.png> <queue-name> <wf1.json> [...]
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { basename } from "node:path";

const [url, screenshot, queueName, ...files] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const report = { workflows: {}, queued: null, pageErrors: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  page.on("pageerror", (e) => report.pageErrors.push(String(e)));
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.app?.graph && window.LiteGraph?.registered_node_types, null, { timeout: 120000 });

  for (const file of files) {
    const name = basename(file, ".json");
    const wf = JSON.parse(readFileSync(file, "utf8"));
    report.workflows[name] = await page.evaluate(async (wf) => {
      await window.app.loadGraphData(wf, true, true, null);
      const graph = window.app.graph;
      const known = window.LiteGraph.registered_node_types;
      const missing = wf.nodes.map((n) => n.type).filter((t) => !known[t]);
      const broken = [];
      const links = graph.links instanceof Map ? [...graph.links.values()] : Object.values(graph.links ?? {});
      for (const link of links) {
        if (!link) continue;
        const src = graph.getNodeById(link.origin_id);
        const dst = graph.getNodeById(link.target_id);
        const input = dst?.inputs?.[link.target_slot];
        if (!src || !dst || !input || input.link !== link.id) broken.push(link.id);
      }
      return { nodes: graph.nodes.length, links: links.length, expectedLinks: wf.links.length, missing, broken };
    }, wf);
  }

  if (queueName) {
    const wf = JSON.parse(readFileSync(files.find((f) => basename(f, ".json") === queueName), "utf8"));
    await page.evaluate(async (wf) => { await window.app.loadGraphData(wf, true, true, null); }, wf);
    const runButton = page.getByRole("button", { name: "Run", exact: true }).first();
    await runButton.waitFor({ state: "visible", timeout: 60000 });
    await runButton.click();
    const shown = await page.waitForFunction(() => {
      for (const node of window.app.graph.nodes) {
        const img = node.imgs?.[0];
        const isOutput = node.constructor?.nodeData?.output_node;
        if (isOutput && img && img.complete && img.naturalWidth > 0 && /type=(output|temp)/.test(img.src)) {
          return { node: node.type, width: img.naturalWidth, height: img.naturalHeight, src: img.src };
        }
      }
      return null;
    }, null, { timeout: 240000, polling: 500 });
    report.queued = { name: queueName, image: await shown.jsonValue() };
  }
  await page.screenshot({ path: screenshot });

  // After the Run-button check, so that one does not wait behind every other workflow.
  for (const file of files) {
    const wf = JSON.parse(readFileSync(file, "utf8"));
    Object.assign(report.workflows[basename(file, ".json")], await page.evaluate(async (wf) => {
      await window.app.loadGraphData(wf, true, true, null);
      const built = await window.app.graphToPrompt();
      const reply = await fetch("/prompt", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ prompt: built.output, extra_data: { extra_pnginfo: { workflow: built.workflow } } }),
      });
      const queued = await reply.json();
      return { status: reply.status, promptId: queued.prompt_id ?? null, nodeErrors: queued.node_errors ?? queued };
    }, wf));
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
