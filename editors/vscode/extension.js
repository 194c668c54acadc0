// Starts `ccl lsp` (stdio) for .ccl files. The server does all the work; see docs/editors.md.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("ccl").get("server.command");
  client = new LanguageClient("ccl", "CCL language server",
    { command, args, options: { cwd: vscode.workspace.rootPath } },
    { documentSelector: [{ scheme: "file", language: "ccl" }] });
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
