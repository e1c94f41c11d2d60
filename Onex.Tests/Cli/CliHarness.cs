using System.Text;
using System.Threading.Channels;
using Onex.Cli;
using Onex.Tests.Client;

namespace Onex.Tests.Cli;

/// <summary>Stdout for an in-process CLI run: keeps everything, and hands out lines as they are written.</summary>
internal sealed class CapturedOutput : StringWriter
{
    private readonly Channel<string> _lines = Channel.CreateUnbounded<string>();
    private readonly StringBuilder _partial = new();

    public override void Write(char value)
    {
        base.Write(value);
        if (value == '\n')
        {
            _lines.Writer.TryWrite(_partial.ToString().TrimEnd('\r'));
            _partial.Clear();
        }
        else
        {
            _partial.Append(value);
        }
    }

    public override void Write(string? value)
    {
        foreach (var c in value ?? "") Write(c);
    }

    public override void WriteLine(string? value)
    {
        Write(value);
        Write('\n');
    }

    public override void WriteLine() => Write('\n');

    public Task<string> NextLineAsync(string what) => _lines.Reader.ReadAsync().AsTask().Within(what);
}

/// <summary>Stdin that stays open until the test closes it.</summary>
internal sealed class ClosableInput : TextReader
{
    private readonly ManualResetEventSlim _closed = new();

    public void CloseInput() => _closed.Set();

    public override string? ReadLine()
    {
        _closed.Wait();
        return null;
    }

    public override int Read()
    {
        _closed.Wait();
        return -1;
    }
}

/// <summary>Runs <c>onex</c> in this process against a registry.</summary>
internal static class Onex
{
    public sealed record Result(int ExitCode, string Output, string Error)
    {
        public override string ToString() => $"exit {ExitCode}; stdout: {Output}; stderr: {Error}";
    }

    public static string[] At(TestRegistry registry, params string[] args) =>
        ["--registry", registry.Host.RouterEndpoint, "--registry-pub", registry.Host.PubEndpoint, "--timeout", "2", .. args];

    public static Task<Result> RunAsync(params string[] args) => RunAsync(Waits.Default, args);

    /// <summary>Runs onex in-process, failing the test if it takes longer than <paramref name="limit"/>.</summary>
    public static async Task<Result> RunAsync(TimeSpan limit, params string[] args)
    {
        var output = new CapturedOutput();
        var error = new StringWriter();
        var code = await OnexCli.RunAsync(args, output, error, TextReader.Null).Within($"onex {string.Join(' ', args)}", limit);
        return new Result(code, output.ToString(), error.ToString());
    }
}
