/** Stylesheets imported by a page's script: esbuild emits them as the page's CSS file. */
declare module "*.css";
