using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using Onex.RegistryNode.Hosting;
using Onex.RegistryNode.Metrics;

namespace Onex.RegistryNode.Http;

/// <summary>
/// The registry node's HTTP endpoint (Kestrel): <c>/metrics</c> (Prometheus), <c>/healthz</c>, <c>/readyz</c>,
/// <c>/api/snapshot</c>, <c>/api/changes</c> (Server-Sent Events) and the dashboard at <c>/</c>. Everything it serves
/// comes from a <see cref="RegistryView"/> kept off the registry thread; the only work it gives that thread is one
/// snapshot when the view (re)syncs and a pool count once per <see cref="PoolSampleInterval"/>.
/// Started with one call (<see cref="StartAsync"/>) and stopped with one (<see cref="DisposeAsync"/>).
/// </summary>
internal sealed partial class RegistryHttpServer : IAsyncDisposable
{
    /// <summary>How often the free and quarantined port counts are read on the registry thread.</summary>
    public static readonly TimeSpan PoolSampleInterval = TimeSpan.FromSeconds(1);

    /// <summary>Longest change-type prefix <c>/api/changes?prefix=</c> takes.</summary>
    public const int MaxPrefixLength = 64;

    private readonly WebApplication _app;
    private readonly RegistryNodeHost _host;
    private readonly RegistryView _view;
    private readonly MeterProvider _meters;
    private readonly ITimer _poolTimer;
    private readonly ILogger _logger;
    // Guarded by itself: validations run one at a time. Bounded by the bytes its parsed schemas cost, like the registry's own.
    private readonly Tools.ParsedSchemaCache _schemas = new(16 * 1024 * 1024);
    private readonly CancellationTokenSource _shutdown = new();
    private PoolSample? _pool;
    private (ViewState? View, PoolSample? Pool, RegistryGauges? Gauges) _gauges;
    private int _disposed;
    private bool _attached;

    private RegistryHttpServer(WebApplication app, RegistryNodeHost host, RegistryView view, MeterProvider meters, ILogger logger)
    {
        _app = app;
        _host = host;
        _view = view;
        _meters = meters;
        _logger = logger;
        _poolTimer = host.Time.CreateTimer(_ => SamplePool(), null, TimeSpan.Zero, PoolSampleInterval);
    }

    /// <summary>The address served, with the OS-chosen port when the endpoint asked for port 0.</summary>
    public string Url { get; private set; } = "";

    /// <summary>
    /// Starts serving <paramref name="endpoint"/> (<c>http://IP:PORT</c>) for <paramref name="host"/>. Throws
    /// <see cref="IOException"/> when the address is in use, <see cref="ArgumentException"/> when it is not one.
    /// </summary>
    public static async Task<RegistryHttpServer> StartAsync(RegistryNodeHost host, string endpoint, ILoggerFactory loggers, CancellationToken ct = default)
    {
        if (!HttpEndpoints.TryParse(endpoint, out var address, out var problem))
            throw new ArgumentException($"'{endpoint}' {problem}.", nameof(endpoint));

        var metrics = host.Metrics;
        var view = new RegistryView(
            token => host.InvokeAsync(state => state.Snapshot()).WaitAsync(token), metrics, host.Time, loggers.CreateLogger<RegistryView>());

        // Only this node's Onex.Registry meter: other nodes in the same process (tests) have meters of that name too.
        var meters = Sdk.CreateMeterProviderBuilder()
            .AddMeter(RegistryMetrics.MeterName, "System.Runtime")
            .AddView(instrument => instrument.Meter.Name == RegistryMetrics.MeterName && !ReferenceEquals(instrument.Meter, metrics.Meter)
                ? MetricStreamConfiguration.Drop : null)
            .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0)
            .Build();

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(loggers);
        builder.Services.AddSingleton<IHostLifetime, NodeOwnedLifetime>(); // the node handles SIGINT/SIGTERM itself
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(address);
            var limits = kestrel.Limits;
            limits.MaxConcurrentConnections = 256;
            limits.MaxConcurrentUpgradedConnections = 0;
            limits.MaxRequestHeadersTotalSize = 16 * 1024;
            limits.MaxRequestHeaderCount = 64;
            limits.MaxRequestLineSize = 8 * 1024;
            limits.MaxRequestBodySize = 256 * 1024;
            limits.KeepAliveTimeout = TimeSpan.FromSeconds(60);
            limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
        });
        var app = builder.Build();
        var server = new RegistryHttpServer(app, host, view, meters, loggers.CreateLogger<RegistryHttpServer>());
        metrics.GaugeSource = server.Gauges;
        server.Map(app);
        try
        {
            await app.StartAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        if (!host.Broadcasts.Attach(view))
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException("The node serves an HTTP endpoint already.");
        }
        server._attached = true;
        view.Start(); // the first snapshot is taken after attaching, so no committed change falls between the two
        try
        {
            // Serve complete answers from the first request on (a registry thread that cannot take a snapshot in
            // 30 s is stuck; the node is not started then).
            await view.Synced.WaitAsync(TimeSpan.FromSeconds(30), TimeProvider.System, ct).ConfigureAwait(false);
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
        server.Url = bound ?? endpoint;
        LogServing(server._logger, server.Url);
        return server;
    }

    private void Map(WebApplication app)
    {
        if (_host.Auth is { } auth) HttpAccess.Use(app, auth);
        app.MapGet("/healthz", context => Json(context, StatusCodes.Status200OK, new { status = "alive" }));
        app.MapGet("/readyz", Ready);
        app.MapGet("/api/snapshot", Snapshot);
        app.MapGet("/api/changes", Changes);
        app.MapPrometheusScrapingEndpoint("/metrics", _meters, null, null);
        app.MapPost("/api/validate", Validate);
        Dashboard.Map(app);
        app.MapFallback(context =>
            Problem(context, StatusCodes.Status404NotFound, $"No resource at {context.Request.Path}; see /, /metrics, /healthz, /readyz, /api/snapshot, /api/changes."));
    }

    private Task Ready(HttpContext context)
    {
        if (!NoQuery(context)) return Task.CompletedTask;
        var serving = _host.Serving;
        var heartbeat = _view.LastHeartbeat;
        var silentFor = heartbeat is null ? (TimeSpan?)null : _host.Time.GetElapsedTime(heartbeat.HeardAt);
        var loopAlive = silentFor is { } s && s <= _host.Options.HeartbeatInterval * 3 && !heartbeat!.Heartbeat.Stopping;
        var storeWritable = _host.StoreWritable;
        var view = _view.Current;
        var checks = new Dictionary<string, object>
        {
            ["serving"] = new
            {
                ok = serving && loopAlive,
                reason = !serving ? "the registry is stopping"
                    : heartbeat is null ? "no heartbeat from the registry loop yet"
                    : !loopAlive ? $"the registry loop has not sent a heartbeat for {(long)silentFor!.Value.TotalMilliseconds} ms"
                    : "the registry loop answers and heartbeats",
            },
            ["store"] = new
            {
                ok = storeWritable,
                reason = storeWritable ? $"{_host.StoreLocation} accepts writes" : $"{_host.StoreLocation} refuses writes; changes are answered UNAVAILABLE",
            },
            ["pub"] = new { ok = serving, reason = serving ? $"bound on {_host.PubEndpoint}" : "closing" },
            ["view"] = new
            {
                ok = view is not null,
                reason = view is null ? "the HTTP view has no snapshot yet" : $"at sequence {view.Sequence} of epoch {view.Epoch}",
            },
        };
        // A stale cluster view is degraded, not unready: the registry still serves its own host (docs/CLUSTER.md).
        var clusterCurrent = _host.Cluster?.Current ?? true;
        if (_host.Cluster is { } cluster)
            checks["cluster"] = new
            {
                ok = clusterCurrent,
                reason = clusterCurrent ? $"host {cluster.HostName}: connected to NATS, the cluster view is current"
                    : $"host {cluster.HostName}: cut off from NATS (or loading the catalogue): the cluster view is stale; this host is still served",
            };
        var ready = serving && loopAlive && storeWritable && view is not null;
        return Json(context, ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable,
            new { status = !ready ? "not ready" : clusterCurrent ? "ready" : "degraded", checks });
    }

    private Task Snapshot(HttpContext context)
    {
        if (!NoQuery(context)) return Task.CompletedTask;
        if (_view.Current is not { } view)
            return Problem(context, StatusCodes.Status503ServiceUnavailable, "The HTTP view has no snapshot yet; retry shortly.");
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.WriteAsync(view.SnapshotJson, context.RequestAborted);
    }

    private async Task Changes(HttpContext context)
    {
        string? prefix = null;
        foreach (var (key, values) in context.Request.Query)
        {
            if (key != "prefix" || values.Count != 1)
            {
                await Problem(context, StatusCodes.Status400BadRequest, $"Unknown or repeated query parameter '{key}'; /api/changes takes prefix (a change-type prefix, e.g. lease.).").ConfigureAwait(false);
                return;
            }
            prefix = values[0];
            if (prefix is null || prefix.Length > MaxPrefixLength || !prefix.All(c => c is (>= 'a' and <= 'z') or '.'))
            {
                await Problem(context, StatusCodes.Status400BadRequest, $"prefix must be up to {MaxPrefixLength} characters of a-z and '.', e.g. lease. or node.unhealthy.").ConfigureAwait(false);
                return;
            }
        }
        var client = _view.Join(prefix);
        if (client is null)
        {
            await Problem(context, StatusCodes.Status503ServiceUnavailable,
                $"No change stream available: the view has no snapshot yet, or {RegistryView.MaxClients} clients are connected.").ConfigureAwait(false);
            return;
        }
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _shutdown.Token);
        try
        {
            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-store";
            var body = context.Response.Body;
            var reader = client.Events;
            while (await reader.WaitToReadAsync(ended.Token).ConfigureAwait(false))
            {
                while (reader.TryRead(out var evt)) await body.WriteAsync(evt.Frame, ended.Token).ConfigureAwait(false);
                await body.FlushAsync(ended.Token).ConfigureAwait(false);
            }
            // Completed: the client fell behind or the node stops; the connection ends and the client reconnects.
        }
        catch (OperationCanceledException)
        {
            // the client went away
        }
        catch (IOException)
        {
            // the client went away mid-write
        }
        finally
        {
            _view.Leave(client);
        }
    }

    /// <summary>
    /// The dashboard's validation form: <c>{"tool": "name@version", "direction": "input"|"output", "payload": "JSON text"}</c>
    /// checked against the tool's schema here, off the registry thread, the way the registry checks a ValidatePayload.
    /// </summary>
    private async Task Validate(HttpContext context)
    {
        ValidateRequest? request;
        try
        {
            request = await JsonSerializer.DeserializeAsync<ValidateRequest>(context.Request.Body, JsonOptions, context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException ex)
        {
            await Problem(context, StatusCodes.Status400BadRequest, $"The body is not a JSON object {{tool, direction, payload}}: {ex.Message}").ConfigureAwait(false);
            return;
        }
        catch (BadHttpRequestException ex)
        {
            await Problem(context, ex.StatusCode, ex.Message).ConfigureAwait(false);
            return;
        }
        if (request is not { Tool: { Length: > 0 } tool, Payload: { } payload } || request.Direction is not (null or Onex.Protocol.PayloadDirections.Input or Onex.Protocol.PayloadDirections.Output))
        {
            await Problem(context, StatusCodes.Status400BadRequest, "Give tool (name@version), payload (JSON text) and optionally direction (input or output).").ConfigureAwait(false);
            return;
        }
        if (_view.Current?.Tools.GetValueOrDefault(tool) is not { } record)
        {
            await Problem(context, StatusCodes.Status404NotFound, $"No tool '{tool}' is registered.").ConfigureAwait(false);
            return;
        }
        List<Onex.Protocol.ValidationIssue> issues;
        try
        {
            lock (_schemas) issues = Tools.ToolCatalog.Check(record, request.Direction ?? Onex.Protocol.PayloadDirections.Input, payload, _schemas, Tools.ThreadCpuTime.Instance);
        }
        catch (Onex.Errors.OnexException ex)
        {
            await Problem(context, StatusCodes.Status422UnprocessableEntity, ex.Message).ConfigureAwait(false);
            return;
        }
        await Json(context, StatusCodes.Status200OK, new { valid = issues.Count == 0, tool, fingerprint = record.Fingerprint, errors = issues }).ConfigureAwait(false);
    }

    private sealed record ValidateRequest(string? Tool, string? Direction, string? Payload);

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);

    private RegistryGauges? Gauges()
    {
        var view = _view.Current;
        var pool = Volatile.Read(ref _pool);
        if (view is null) return null;
        var cached = _gauges;
        if (ReferenceEquals(cached.View, view) && ReferenceEquals(cached.Pool, pool)) return cached.Gauges;
        var gauges = new RegistryGauges(
            view.Leases.Count, pool?.Free ?? 0, pool?.Quarantined ?? 0,
            CountBy(view.Nodes.Values.Select(n => n.Health)), CountBy(view.Buses.Values.Select(b => b.Health)),
            view.Tools.Count, view.Sequence);
        _gauges = (view, pool, gauges);
        return gauges;
    }

    private static Dictionary<string, int> CountBy(IEnumerable<string> healths)
    {
        // Every known value is reported, zero included, so a series does not vanish when its last member leaves.
        var counts = new Dictionary<string, int>(StringComparer.Ordinal)
        {
            [Onex.Protocol.Health.Healthy] = 0, [Onex.Protocol.Health.Unhealthy] = 0,
        };
        foreach (var health in healths) counts[health] = counts.GetValueOrDefault(health) + 1;
        return counts;
    }

    private void SamplePool()
    {
        if (Volatile.Read(ref _disposed) != 0) return;
        _host.Post(state =>
        {
            var stats = state.CurrentStats();
            Volatile.Write(ref _pool, new PoolSample(stats.FreePorts, stats.QuarantinedPorts));
        });
    }

    private static bool NoQuery(HttpContext context)
    {
        if (context.Request.QueryString.HasValue && context.Request.Query.Count > 0)
        {
            _ = Problem(context, StatusCodes.Status400BadRequest, $"{context.Request.Path} takes no query parameters.");
            return false;
        }
        return true;
    }

    private static Task Problem(HttpContext context, int status, string detail) =>
        Json(context, status, new { status, error = ReasonPhrases.GetReasonPhrase(status), detail });

    private static Task Json<T>(HttpContext context, int status, T value)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.Headers.CacheControl = "no-store";
        return context.Response.WriteAsync(JsonSerializer.Serialize(value, JsonOptions), Encoding.UTF8, context.RequestAborted);
    }

    /// <summary>Stops serving (open SSE streams end) and detaches from the node.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        await _shutdown.CancelAsync().ConfigureAwait(false); // open change streams end now
        await _poolTimer.DisposeAsync().ConfigureAwait(false);
        if (_attached) _host.Broadcasts.Detach(_view);
        await _view.DisposeAsync().ConfigureAwait(false);
        // A cancelled token makes Kestrel abort the connections still open after 5 s (without one it waits for them
        // forever, and a second stop from DisposeAsync waits for the first).
        using (var stopping = new CancellationTokenSource(TimeSpan.FromSeconds(5), TimeProvider.System))
        {
            try
            {
                await _app.StopAsync(stopping.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // stopped the hard way
            }
        }
        await _app.DisposeAsync().ConfigureAwait(false);
        _shutdown.Dispose();
        _host.Metrics.GaugeSource = null;
        _meters.Dispose();
    }

    private sealed record PoolSample(int Free, int Quarantined);

    /// <summary>An <see cref="IHostLifetime"/> that leaves signals to the node (ASP.NET's console lifetime would stop on SIGTERM by itself).</summary>
    private sealed class NodeOwnedLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "HTTP endpoint serving on {Url}")]
    private static partial void LogServing(ILogger logger, string url);
}
