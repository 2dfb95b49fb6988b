"""The sweep report: tables (`tables`), statistics (`stats`), figures (`plots`, `mosaic`) and the writer that puts
them together as Markdown, CSV and images next to the results (`write`)."""
