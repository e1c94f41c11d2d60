using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;
using Onex.Protocol;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Http;
using Onex.Tests.Registry;

namespace Onex.Tests.Http;

/// <summary>
/// The dashboard in a real headless Chromium (Debian's chromium and chromium-driver, installed by
/// scripts/install-deps.sh), driven by Selenium: live updates without reload, health badges, the validation form.
/// </summary>
[NonParallelizable] // a browser per test is heavy on a 2-core machine; the 1 s bound below must not measure a queue
public class DashboardBrowserTests
{
    private const string Schema = """{"type":"object","properties":{"name":{"type":"string"},"count":{"type":"integer","minimum":1}},"required":["name"]}""";

    private RegistryNodeHost _node = null!;
    private RegistryHttpServer _http = null!;
    private ChromeDriver _browser = null!;

    [SetUp]
    public async Task StartAsync()
    {
        _node = await TestNodes.StartAsync();
        _http = await RegistryHttpServer.StartAsync(_node, "http://127.0.0.1:0", NullLoggerFactory.Instance);
        _browser = StartBrowser();
        _browser.Navigate().GoToUrl(_http.Url + "/");
        Until(TimeSpan.FromSeconds(30), d => d.FindElement(By.Id("status")).Text == "live", "the page to follow /api/changes");
    }

    [TearDown]
    public async Task StopAsync()
    {
        _browser?.Quit(); // ends chromedriver and the browser it started
        _browser?.Dispose();
        if (_http is not null) await _http.DisposeAsync();
        if (_node is not null) await _node.DisposeAsync();
    }

    private static readonly TimeSpan PushBound = TimeSpan.FromSeconds(10);

    [Test]
    public void A_lease_taken_appears_without_reload_and_disappears_on_release()
    {
        using var dealer = new TestDealer(_node.RouterEndpoint);
        var marker = _browser.ExecuteScript("return window.performance.timeOrigin;"); // same document throughout: no reload

        var lease = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "holder-1", Purpose = "browser-test", TtlMs = 60_000 }).Leases[0];
        var granted = Stopwatch.StartNew();
        // The table is redrawn twice a second (the TTL countdown): cells are read within the wait, which retries a redrawn row.
        // The page is pushed the change (SSE), so it shows the lease without polling: 0.35-0.8 s on a quiet machine
        // (printed below). The bound is wider so that a starved browser on a loaded CI machine is not a failure; a
        // page that needed a reload would never show it.
        var cells = Until(PushBound, d => Row(d, lease.LeaseId)?.FindElements(By.TagName("td")).Select(c => c.Text).ToList(),
            $"lease {lease.LeaseId} on the page without a reload");
        Assert.That(cells[0], Is.EqualTo(lease.Port.ToString()));
        Assert.That(cells[1], Is.EqualTo("holder-1"));
        Assert.That(cells[2], Is.EqualTo("browser-test"));
        Assert.That(cells[3], Does.Match(@"^\d+ s$"), "a TTL countdown");
        TestContext.Out.WriteLine($"lease on the page {granted.ElapsedMilliseconds} ms after the grant reply");

        dealer.Call<LeaseRelease, Ack>(new LeaseRelease { LeaseId = lease.LeaseId, NodeId = "holder-1", FencingToken = lease.FencingToken });
        Until(PushBound, d => Row(d, lease.LeaseId) is null ? "ok" : null, "the released lease gone without a reload");
        TestContext.Out.WriteLine($"released lease off the page {granted.ElapsedMilliseconds} ms after the grant reply");
        Assert.That(_browser.ExecuteScript("return window.performance.timeOrigin;"), Is.EqualTo(marker), "the page was not reloaded");
    }

    [Test]
    public async Task A_node_that_stops_heartbeating_turns_its_badge_unhealthy()
    {
        using var dealer = new TestDealer(_node.RouterEndpoint);
        dealer.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "worker-7", Name = "worker", Host = "127.0.0.1", HeartbeatIntervalMs = 100 });

        // Heartbeat until the page shows it healthy, then stop.
        using (var heartbeats = new CancellationTokenSource())
        {
            var beating = Task.Run(async () =>
            {
                using var beater = new TestDealer(_node.RouterEndpoint);
                while (!heartbeats.IsCancellationRequested)
                {
                    beater.Call<NodeHeartbeat, Ack>(new NodeHeartbeat { NodeId = "worker-7" });
                    await Task.Delay(50).ContinueWith(_ => { }); // the node's own heartbeat period, as a live node keeps
                }
            });
            Until(TimeSpan.FromSeconds(10), d => Badge(d, "worker-7") == "healthy" ? "ok" : null, "worker-7 healthy");
            await heartbeats.CancelAsync();
            await beating;
        }

        Until(TimeSpan.FromSeconds(10), d => Badge(d, "worker-7") == "unhealthy" ? "ok" : null, "worker-7 turned unhealthy");
        var badge = _browser.FindElement(By.CssSelector("[data-node='worker-7']"));
        Assert.That(badge.GetAttribute("class"), Does.Contain("unhealthy"));
    }

    [Test]
    public void The_validation_form_shows_the_issues_of_a_bad_payload()
    {
        using var dealer = new TestDealer(_node.RouterEndpoint);
        dealer.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "tools-1", Name = "tools", Host = "127.0.0.1", HeartbeatIntervalMs = 600_000 });
        dealer.Call<ToolContractRegistration, ToolContractRecord>(new ToolContractRegistration
        {
            Name = "orders.create", Version = "1.0.0", Description = "Creates an order", InputSchema = Schema, OutputSchema = """{"type":"object"}""", NodeId = "tools-1",
        });
        Until(TimeSpan.FromSeconds(10), d => d.FindElements(By.CssSelector("#validate-tool option")).Any(o => o.Text == "orders.create@1.0.0") ? "ok" : null,
            "the tool in the form");

        _browser.FindElement(By.CssSelector("#validate-tool option[value='orders.create@1.0.0']")).Click();
        var payload = _browser.FindElement(By.Id("validate-payload"));
        payload.Clear();
        payload.SendKeys("""{"count": 0}""");
        _browser.FindElement(By.CssSelector("#validate button")).Click();

        var issues = Until(TimeSpan.FromSeconds(10), d => d.FindElements(By.CssSelector("#validate-result li")) is { Count: > 0 } items ? items.Select(i => i.Text).ToList() : null,
            "the issues listed");
        Assert.That(issues, Has.Some.Contains("PropertyRequired").And.Some.Contains("name"), string.Join("\n", issues));
        Assert.That(issues, Has.Some.Contains("count"), string.Join("\n", issues));

        payload.Clear();
        payload.SendKeys("""{"name": "widget", "count": 2}""");
        _browser.FindElement(By.CssSelector("#validate button")).Click();
        Until(TimeSpan.FromSeconds(10), d => d.FindElement(By.Id("validate-result")).Text == "valid" ? "ok" : null, "a valid payload accepted");
    }

    [Test]
    public void The_page_fits_a_phone_width_without_horizontal_scrolling()
    {
        _browser.Manage().Window.Size = new System.Drawing.Size(390, 844);
        Until(TimeSpan.FromSeconds(10), d =>
            Convert.ToInt64(((IJavaScriptExecutor)d).ExecuteScript("return document.documentElement.scrollWidth;")) <= 390 ? "ok" : null,
            "no wider than 390 px");
        SaveScreenshot("dashboard-phone.png");
    }

    [Test]
    public void The_page_at_laptop_width_shows_every_panel_filled()
    {
        using var dealer = new TestDealer(_node.RouterEndpoint);
        dealer.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "billing-1", Name = "billing", Host = "127.0.0.1", HeartbeatIntervalMs = 600_000 });
        dealer.Call<NodeAnnouncement, NodeRecord>(new NodeAnnouncement { NodeId = "orders-1", Name = "orders", Host = "127.0.0.1", HeartbeatIntervalMs = 600_000 });
        var leases = dealer.Call<PortRequest, PortGrant>(new PortRequest { NodeId = "orders-1", Count = 3, Purpose = "orders api", TtlMs = 600_000 }).Leases;
        dealer.Call<EventBusRegistration, EventBusRecord>(new EventBusRegistration
        {
            Name = "orders-events", Kind = BusKinds.Zmq, Endpoints = [$"tcp://127.0.0.1:{leases[0].Port}"], NodeId = "orders-1",
        });
        dealer.Call<ToolContractRegistration, ToolContractRecord>(new ToolContractRegistration
        {
            Name = "orders.create", Version = "1.0.0", Description = "Creates an order", InputSchema = Schema, OutputSchema = """{"type":"object"}""", NodeId = "orders-1",
        });
        Until(TimeSpan.FromSeconds(10), d => d.FindElement(By.Id("count-tools")).Text == "1" && d.FindElement(By.Id("count-leases")).Text == "3" ? "ok" : null,
            "every panel filled");
        // The request counter comes from /metrics, polled every 2 s: the 5 requests above (and none before).
        Until(TimeSpan.FromSeconds(10), d => d.FindElement(By.Id("count-requests")).Text == "5" ? "ok" : null, "5 requests counted from /metrics");
        Assert.That(_browser.FindElements(By.CssSelector("#feed li")), Has.Count.GreaterThanOrEqualTo(7), "the change feed lists the changes");
        Assert.That(_browser.FindElement(By.Id("buses")).Text, Does.Contain("orders-events").And.Contain("zmq"));
        SaveScreenshot("dashboard.png");
    }

    private static IWebElement? Row(IWebDriver driver, string leaseId) =>
        driver.FindElements(By.CssSelector($"#leases [data-lease='{leaseId}']")).FirstOrDefault()?.FindElement(By.XPath("./ancestor::tr"));

    private static string? Badge(IWebDriver driver, string nodeId) =>
        driver.FindElements(By.CssSelector($"[data-node='{nodeId}']")).FirstOrDefault()?.Text;

    private T Until<T>(TimeSpan timeout, Func<IWebDriver, T?> condition, string what)
    {
        var wait = new WebDriverWait(_browser, timeout) { PollingInterval = TimeSpan.FromMilliseconds(25), Message = what };
        wait.IgnoreExceptionTypes(typeof(StaleElementReferenceException));
        return wait.Until(d => condition(d))!;
    }

    private void SaveScreenshot(string name)
    {
        var path = Path.Combine(TestContext.CurrentContext.WorkDirectory, name);
        _browser.GetScreenshot().SaveAsFile(path);
        TestContext.AddTestAttachment(path);
    }

    private static ChromeDriver StartBrowser()
    {
        var chromium = FindOnPath("chromium");
        var chromedriver = FindOnPath("chromedriver");
        Assert.That(chromium, Is.Not.Null, "chromium is not installed; scripts/install-deps.sh installs Debian's package");
        Assert.That(chromedriver, Is.Not.Null, "chromedriver is not installed; scripts/install-deps.sh installs Debian's chromium-driver");
        var options = new ChromeOptions { BinaryLocation = chromium };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000",
            "--no-first-run", "--disable-extensions", "--disable-background-networking");
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(chromedriver)!, Path.GetFileName(chromedriver));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':').Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);
}
