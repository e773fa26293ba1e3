using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ModelCompression.Core.Tests.Teachers;

/// <summary>One request the scripted server received.</summary>
/// <param name="Target">The request target (path and query).</param>
/// <param name="Headers">Header names (lower case) and values.</param>
/// <param name="Body">The body's text.</param>
/// <param name="Attempt">Which attempt of this body it is (1 for the first time the server sees it).</param>
internal sealed record ScriptedRequest(string Target, IReadOnlyDictionary<string, string> Headers, string Body, int Attempt)
{
    /// <summary>The content of the body's last message.</summary>
    public string LastMessage
    {
        get
        {
            var messages = JsonNode.Parse(Body)!["messages"]!.AsArray();
            return messages[^1]!["content"]!.GetValue<string>();
        }
    }

    /// <summary>The body's "n" (1 when absent).</summary>
    public int Choices => JsonNode.Parse(Body)!["n"]?.GetValue<int>() ?? 1;
}

/// <summary>What the scripted server does with one request.</summary>
internal abstract record ScriptedReply
{
    /// <summary>An HTTP reply: status, extra headers, body.</summary>
    public sealed record Http(int Status, string Body, IReadOnlyDictionary<string, string>? Headers = null) : ScriptedReply;

    /// <summary>Promises a body of the full length, sends half of it, closes the connection.</summary>
    public sealed record DropMidBody(string Body) : ScriptedReply;

    /// <summary>Waits, then replies (the client has usually given up by then).</summary>
    public sealed record Slow(TimeSpan Delay, ScriptedReply Then) : ScriptedReply;

    /// <summary>Never replies (until the server is disposed).</summary>
    public sealed record Hang : ScriptedReply;
}

/// <summary>
/// A small HTTP/1.1 server on 127.0.0.1 (an ephemeral port) that answers chat-completion requests as a script says, for
/// testing the endpoint teacher's client without the real server: OpenAI-shaped replies and the faults the client must
/// survive (429 with Retry-After, 500, slow replies, a dropped connection mid-body, malformed JSON). Every response closes
/// its connection, which keeps the parsing to one request per connection. It records every request and every body it
/// answered with a 200 in full.
/// </summary>
internal sealed class ScriptedChatServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Func<ScriptedRequest, ScriptedReply> _script;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, int> _attempts = new(StringComparer.Ordinal);
    private readonly Task _loop;

    public ScriptedChatServer(Func<ScriptedRequest, ScriptedReply> script)
    {
        _script = script;
        _listener.Start();
        _loop = Task.Run(AcceptLoop);
    }

    /// <summary>The base URL, as an OpenAI client takes it (…/v1).</summary>
    public string BaseUrl => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port.ToString(CultureInfo.InvariantCulture)}/v1";

    /// <summary>Every request received, in arrival order.</summary>
    public ConcurrentQueue<ScriptedRequest> Requests { get; } = new();

    /// <summary>The bodies answered with a complete 200 reply, once per answer.</summary>
    public ConcurrentQueue<string> Answered { get; } = new();

    /// <summary>An OpenAI chat.completion body with one choice per content.</summary>
    public static string Completion(IReadOnlyList<string> contents, string finishReason = "stop", int promptTokens = 10, int completionTokens = 5, JsonArray? logprobs = null)
    {
        var choices = new JsonArray();
        for (var i = 0; i < contents.Count; i++)
        {
            choices.Add(new JsonObject
            {
                ["index"] = i,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = contents[i] },
                ["logprobs"] = logprobs is null ? null : new JsonObject { ["content"] = logprobs.DeepClone() },
                ["finish_reason"] = finishReason,
            });
        }

        return new JsonObject
        {
            ["id"] = "chatcmpl-" + Guid.NewGuid().ToString("N"),
            ["object"] = "chat.completion",
            ["created"] = 1733000000,
            ["model"] = "scripted",
            ["choices"] = choices,
            ["usage"] = new JsonObject { ["prompt_tokens"] = promptTokens, ["completion_tokens"] = completionTokens, ["total_tokens"] = promptTokens + completionTokens },
        }.ToJsonString();
    }

    /// <summary>A 200 reply with one choice.</summary>
    public static ScriptedReply Ok(string content, int completionTokens = 5) => new ScriptedReply.Http(200, Completion([content], completionTokens: completionTokens));

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // The loop ends by the listener's stop.
        }

        _stop.Dispose();
    }

    private async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            _ = Task.Run(() => Serve(client));
        }
    }

    private async Task Serve(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var request = await ReadRequest(stream);
                if (request is null)
                {
                    return;
                }

                Requests.Enqueue(request);
                await Write(stream, _script(request), request);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The client gave up (a timeout) or the test ended.
            }
        }
    }

    private async Task<ScriptedRequest?> ReadRequest(NetworkStream stream)
    {
        var buffer = new List<byte>();
        var one = new byte[1];
        while (!EndsWithBlankLine(buffer))
        {
            if (await stream.ReadAsync(one, _stop.Token) == 0)
            {
                return null;
            }

            buffer.Add(one[0]);
        }

        var head = Encoding.ASCII.GetString([.. buffer]).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var target = head[0].Split(' ')[1];
        var headers = head.Skip(1).Select(h => h.Split(':', 2)).ToDictionary(h => h[0].Trim().ToLowerInvariant(), h => h[1].Trim(), StringComparer.Ordinal);
        var length = headers.TryGetValue("content-length", out var text) ? int.Parse(text, CultureInfo.InvariantCulture) : 0;
        var body = new byte[length];
        await stream.ReadExactlyAsync(body, _stop.Token);
        var bodyText = Encoding.UTF8.GetString(body);
        return new ScriptedRequest(target, headers, bodyText, _attempts.AddOrUpdate(bodyText, 1, (_, n) => n + 1));
    }

    private async Task Write(NetworkStream stream, ScriptedReply reply, ScriptedRequest request)
    {
        switch (reply)
        {
            case ScriptedReply.Http http:
                var body = Encoding.UTF8.GetBytes(http.Body);
                await stream.WriteAsync(Head(http.Status, body.Length, http.Headers), _stop.Token);
                await stream.WriteAsync(body, _stop.Token);
                await stream.FlushAsync(_stop.Token);
                if (http.Status == 200)
                {
                    Answered.Enqueue(request.Body);
                }

                break;
            case ScriptedReply.DropMidBody drop:
                var full = Encoding.UTF8.GetBytes(drop.Body);
                await stream.WriteAsync(Head(200, full.Length, null), _stop.Token);
                await stream.WriteAsync(full.AsMemory(0, full.Length / 2), _stop.Token);
                await stream.FlushAsync(_stop.Token);
                // Closing without sending the rest: the client sees the connection end mid-body.
                stream.Socket.Shutdown(SocketShutdown.Both);
                break;
            case ScriptedReply.Slow slow:
                await Task.Delay(slow.Delay, _stop.Token);
                await Write(stream, slow.Then, request);
                break;
            case ScriptedReply.Hang:
                await Task.Delay(Timeout.Infinite, _stop.Token);
                break;
        }
    }

    private static byte[] Head(int status, int length, IReadOnlyDictionary<string, string>? headers)
    {
        var text = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"HTTP/1.1 {status} {(status == 200 ? "OK" : "Scripted")}\r\n")
            .Append("Content-Type: application/json\r\n")
            .Append(CultureInfo.InvariantCulture, $"Content-Length: {length}\r\n")
            .Append("Connection: close\r\n");
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            text.Append(CultureInfo.InvariantCulture, $"{name}: {value}\r\n");
        }

        return Encoding.ASCII.GetBytes(text.Append("\r\n").ToString());
    }

    private static bool EndsWithBlankLine(List<byte> buffer) =>
        buffer.Count >= 4 && buffer[^4] == '\r' && buffer[^3] == '\n' && buffer[^2] == '\r' && buffer[^1] == '\n';
}
