/**
 * The /demo/ page: a small invoicing screen on the five seed flags. Django renders the page with
 * the flags already evaluated for the first account (the bootstrap), and this bundle renders
 * synchronously from it before the first paint; the SSE stream then keeps it current.
 */
import { FlagsiteProvider, readBootstrap, useFeatureFlag, useFlagDetails, useFlagsSnapshot, useVariant } from "@flagsite/react";
import { StrictMode, useState } from "react";
import { flushSync } from "react-dom";
import { createRoot } from "react-dom/client";

interface DemoConfig {
  clientKey: string;
  baseUrl: string;
  environment: string;
  context: Account;
}
interface Account {
  accountId: string;
  plan: string;
  country: string;
}

const FLAGS = ["maintenance-mode", "new-pdf-engine", "redesigned-dashboard", "ai-chatbot", "bulk-invoice-api"];
const PRESETS: Account[] = [
  { accountId: "acct-1001", plan: "enterprise", country: "US" },
  { accountId: "acct-2040", plan: "free", country: "US" },
  { accountId: "acct-3177", plan: "free", country: "DE" },
  { accountId: "acct-4203", plan: "pro", country: "UK" },
];
const INVOICES = [
  { number: "INV-2041", customer: "Northwind Traders", amount: 1240.5, status: "paid" },
  { number: "INV-2042", customer: "Blue Yonder Airlines", amount: 310.0, status: "open" },
  { number: "INV-2043", customer: "Fabrikam Inc.", amount: 8799.99, status: "overdue" },
];

export function contextOf(account: Account): Record<string, string> {
  const user = `user-${account.accountId}`;
  return { targetingKey: user, userId: user, accountId: account.accountId, plan: account.plan, country: account.country };
}

function FlagTable() {
  const snapshot = useFlagsSnapshot();
  return (
    <table className="flags" id="flag-table">
      <caption>
        Flags (version <span id="flags-version">{snapshot.version ?? "-"}</span>, from <span id="flags-source">{snapshot.source}</span>)
      </caption>
      <tbody>
        {FLAGS.map((key) => (
          <FlagRow key={key} flagKey={key} />
        ))}
      </tbody>
    </table>
  );
}

function FlagRow({ flagKey }: { flagKey: string }) {
  const d = useFlagDetails(flagKey);
  const value = d === null ? "unknown" : JSON.stringify(d.value);
  return (
    <tr data-flag={flagKey} data-value={value}>
      <th>{flagKey}</th>
      <td>{value}</td>
      <td>{d?.variant ?? ""}</td>
      <td>{d?.reason ?? ""}</td>
    </tr>
  );
}

function AccountSwitcher({ account, onChange }: { account: Account; onChange(a: Account): void }) {
  return (
    <form className="switcher" onSubmit={(e) => e.preventDefault()}>
      <label>
        Account
        <select
          id="account-preset"
          value={PRESETS.findIndex((p) => p.accountId === account.accountId)}
          onChange={(e) => onChange(PRESETS[Number(e.target.value)] ?? account)}
        >
          {PRESETS.map((p, i) => (
            <option key={p.accountId} value={i}>
              {p.accountId} ({p.plan}, {p.country})
            </option>
          ))}
          <option value={-1} disabled>
            custom
          </option>
        </select>
      </label>
      <label>
        Account id
        <input id="account-id" value={account.accountId} onChange={(e) => onChange({ ...account, accountId: e.target.value })} />
      </label>
      <label>
        Plan
        <select id="account-plan" value={account.plan} onChange={(e) => onChange({ ...account, plan: e.target.value })}>
          {["free", "pro", "enterprise"].map((p) => (
            <option key={p}>{p}</option>
          ))}
        </select>
      </label>
      <label>
        Country
        <select id="account-country" value={account.country} onChange={(e) => onChange({ ...account, country: e.target.value })}>
          {["US", "UK", "DE", "FR", "JP"].map((c) => (
            <option key={c}>{c}</option>
          ))}
        </select>
      </label>
    </form>
  );
}

function InvoicingScreen() {
  const maintenance = useFeatureFlag("maintenance-mode", false);
  const newPdf = useFeatureFlag("new-pdf-engine", false);
  const dashboard = useFeatureFlag("redesigned-dashboard", "old");
  const chatbot = useFeatureFlag("ai-chatbot", false);
  const bulkApi = useFeatureFlag("bulk-invoice-api", false);
  const dashboardVariant = useVariant("redesigned-dashboard", "control");
  return (
    <main className={`dashboard-${dashboard}`} data-dashboard={dashboardVariant ?? ""}>
      {maintenance && (
        <div id="maintenance-banner" className="banner" role="alert">
          Scheduled maintenance: invoicing is read-only for a few minutes.
        </div>
      )}
      <section className="invoices">
        <h2>{dashboard === "new" ? "Your invoices at a glance" : "Invoices"}</h2>
        <table>
          <thead>
            <tr>
              <th>Number</th>
              <th>Customer</th>
              <th>Amount</th>
              <th>Status</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {INVOICES.map((inv) => (
              <tr key={inv.number}>
                <td>{inv.number}</td>
                <td>{inv.customer}</td>
                <td>${inv.amount.toFixed(2)}</td>
                <td className={`status-${inv.status}`}>{inv.status}</td>
                <td>
                  <button type="button" className="pdf" disabled={maintenance}>
                    {newPdf ? "PDF (new engine)" : "PDF"}
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <button type="button" id="new-invoice" disabled={maintenance}>
          New invoice
        </button>
      </section>
      {bulkApi && (
        <section id="bulk-api" className="panel">
          <h3>Bulk invoice API</h3>
          <p>Upload a CSV of up to 10,000 invoices, or POST them to /v2/invoices/bulk.</p>
        </section>
      )}
      {chatbot && (
        <aside id="chatbot" className="chatbot">
          Ask our assistant about your invoices
        </aside>
      )}
    </main>
  );
}

function App({ config }: { config: DemoConfig }) {
  const [account, setAccount] = useState<Account>(config.context);
  return (
    <FlagsiteProvider clientKey={config.clientKey} baseUrl={config.baseUrl} context={contextOf(account)} bootstrap={readBootstrap()}>
      <header>
        <h1>Acme Invoicing</h1>
        <span className="env">environment: {config.environment}</span>
      </header>
      <AccountSwitcher account={account} onChange={setAccount} />
      <InvoicingScreen />
      <FlagTable />
    </FlagsiteProvider>
  );
}

function boot(): void {
  const configText = document.getElementById("flagsite-demo-config")?.textContent;
  const mount = document.getElementById("demo-root");
  if (!configText || !mount) return;
  const config = JSON.parse(configText) as DemoConfig;
  const root = createRoot(mount);
  // Render now, before the browser paints: the first paint already shows the served flags.
  flushSync(() =>
    root.render(
      <StrictMode>
        <App config={config} />
      </StrictMode>,
    ),
  );
}

boot();
