// An Express starter: `npm install`, then `npm run dev`; open it with the Preview tile.
import express from "express";

const app = express();
const port = Number(process.env.PORT || 3000);

app.get("/", (req, res) => {
  res.send("<h1>Hello from Express</h1><p>Edit index.js and reload.</p>");
});

app.listen(port, "127.0.0.1", () => {
  console.log(`Listening on http://127.0.0.1:${port}`);
});
