"""TgGod thumbnail service: streaming video thumbnails from ffmpeg over gRPC."""
