vcl 4.1;
# Where the ladderd origin listens (`server.http_listen`). The timeouts are
# part of the contract with ladderd.vcl: keep them when you move the address.
backend ladderd {
    .host = "127.0.0.1";
    .port = "8080";
    # The origin holds a blocking request up to 3 target durations (6 s with
    # 2 s segments); answer only after that.
    .first_byte_timeout = 15s;
    # A chunked part in progress sends a frame every ~33 ms.
    .between_bytes_timeout = 10s;
    .connect_timeout = 1s;
}
